"""The `trialplane` command: `serve` from the server, the rest built on the SDK."""

from .app import main

__all__ = ["main"]
