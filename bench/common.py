"""What the bench scripts share: a server process and the printed table."""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


class ServerProcess:
    """`trialplane serve` on a free port with the background jobs off."""

    def __init__(self, db: Path):
        self.proc = subprocess.Popen(
            [str(BIN / "trialplane"), "serve", "--port", "0", "--db", str(db), "--watchdog-interval", "0",
             "--retention-interval", "0", "--log-level", "WARNING"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self.address = self.proc.stdout.readline().strip().rsplit(" ", 1)[1]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def row(name: str, samples: list[float], unit: str, note: str = "") -> tuple:
    return (name, statistics.median(samples), min(samples), max(samples), unit, note)


def print_table(rows: list[tuple], runs: int, script: str, decimals: int = 1) -> None:
    header = ("measurement", "median", "min", "max", "unit", "note")
    fmt = f"{{:,.{decimals}f}}"
    cells = [header] + [(r[0], fmt.format(r[1]), fmt.format(r[2]), fmt.format(r[3]), r[4], r[5]) for r in rows]
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(header))]
    for i, c in enumerate(cells):
        print("  ".join(str(x).ljust(w) if j in (0, 4, 5) else str(x).rjust(w) for j, (x, w) in enumerate(zip(c, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print(f"\n{runs} runs each; reproduce with: make bench (or .venv/bin/python bench/{script} --runs {runs})\n")
