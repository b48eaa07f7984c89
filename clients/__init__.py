"""trialplane.client: the Python SDK (`from trialplane.client import Client`)
and the `trialplane` command.

The SDK is imported on first use of one of its names, so the command line
starts without loading grpc just to print its help."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sdk import *  # noqa: F403


def __getattr__(name: str):
    if name != "sdk" and not name.startswith("_"):
        sdk = importlib.import_module(f"{__name__}.sdk")
        if name in sdk.__all__:
            return getattr(sdk, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
