"""The server's clock: microseconds since the Unix epoch, as stored."""

from __future__ import annotations

import time


def now_us() -> int:
    return time.time_ns() // 1000
