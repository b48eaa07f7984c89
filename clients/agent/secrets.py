"""Secrets kept out of what the agent ships: its tokens and environment
values whose names say they are secret, replaced in log lines (and so in the
failure reason built from the last of them) before they leave the machine."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_?KEY|PRIVATE_KEY|ACCESS_KEY", re.IGNORECASE)
# Shorter values are too likely to occur in ordinary output ("1", "true").
MIN_LENGTH = 8
REDACTED = "[redacted]"


def secret_values(environ: Mapping[str, str]) -> list[str]:
    return [value for name, value in environ.items() if SECRET_NAME.search(name) and len(value) >= MIN_LENGTH]


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()):
        self._secrets: set[str] = set()
        self._pattern: re.Pattern | None = None
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        fresh = {s for s in secrets if s and len(s) >= MIN_LENGTH} - self._secrets
        if fresh:
            self._secrets |= fresh
            # Longest first, so a secret containing another is replaced whole.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(REDACTED, text)
