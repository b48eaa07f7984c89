"""How long a trial's task log lines and profiler samples are kept."""

from __future__ import annotations

DAY_US = 86_400_000_000

# A trial's log_retention_days: FOREVER keeps everything, SERVER_DEFAULT
# takes the server's --retention-days.
FOREVER = -1
SERVER_DEFAULT = 0


def cutoff(trial_days: int, default_days: int, now_us: int) -> int | None:
    """The time (microseconds) before which a trial's lines and samples are
    past their retention; None when they are kept forever."""
    days = default_days if trial_days == SERVER_DEFAULT else trial_days
    if days <= 0:
        return None
    return now_us - days * DAY_US
