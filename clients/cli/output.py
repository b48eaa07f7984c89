"""How the command prints: tables that fit the terminal (80 columns when
there is none), or JSON Lines, one protobuf JSON object per item."""

from __future__ import annotations

import datetime as dt
import math
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

ELLIPSIS = "…"
GAP = "  "
MIN_FLEX_WIDTH = 8


def terminal_width() -> int:
    return shutil.get_terminal_size((80, 24)).columns


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + ELLIPSIS


@dataclass
class Table:
    """Columns by header. flex names the column that is cut short (with an
    ellipsis) when the rows would not fit the width; right holds the
    columns aligned to the right (numbers)."""

    headers: Sequence[str]
    flex: str | None = None
    right: set[str] = field(default_factory=set)

    def widths(self, rows: Sequence[Sequence[str]], width: int) -> list[int]:
        widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(self.headers)]
        total = sum(widths) + len(GAP) * (len(widths) - 1)
        if self.flex is not None and total > width:
            i = list(self.headers).index(self.flex)
            widths[i] = max(MIN_FLEX_WIDTH, widths[i] - (total - width))
        return widths

    def fit(self, widths: Sequence[int], width: int | None = None) -> list[int]:
        """Fixed widths for rows not seen yet: the flex column gets what is left of the width."""
        widths = list(widths)
        if self.flex is not None:
            i = list(self.headers).index(self.flex)
            rest = (width or terminal_width()) - sum(widths) + widths[i] - len(GAP) * (len(widths) - 1)
            widths[i] = max(MIN_FLEX_WIDTH, rest)
        return widths

    def line(self, cells: Sequence[str], widths: Sequence[int]) -> str:
        out = []
        for header, cell, w in zip(self.headers, cells, widths):
            cell = clip(cell, w)
            out.append(cell.rjust(w) if header in self.right else cell.ljust(w))
        return GAP.join(out).rstrip()

    def render(self, rows: Iterable[Sequence[str]], width: int | None = None) -> str:
        rows = list(rows)
        widths = self.widths(rows, width or terminal_width())
        return "\n".join(self.line(r, widths) for r in [list(self.headers), *rows])


def write_table(table: Table, rows: Iterable[Sequence[str]], out: TextIO | None = None) -> None:
    print(table.render(rows), file=out or sys.stdout)


def key_values(pairs: Iterable[tuple[str, str]]) -> str:
    """Two columns, "key  value", leaving out empty values."""
    pairs = [(k, v) for k, v in pairs if v]
    width = max((len(k) for k, _ in pairs), default=0)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in pairs)


def when(ts, seconds: bool = False) -> str:
    """A Timestamp in local time, "" when unset."""
    if ts.seconds == 0 and ts.nanos == 0:
        return ""
    moment = dt.datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def duration(seconds: float) -> str:
    """45s, 3m05s, 2h03m, 3d04h."""
    if seconds <= 0:
        return ""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def number(value: float | int | str | None) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return f"{value:.6g}"


def size(count: int) -> str:
    """Bytes in binary units: 512 B, 3.0 MiB."""
    value, unit = float(count), "B"
    for bigger in ["KiB", "MiB", "GiB", "TiB"]:
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"


class Printer:
    """Prints items as a table or as JSON Lines (the protobuf JSON mapping of
    each item on a line of its own, as grpcurl spells it), flushing each line
    so a follow shows up at once."""

    def __init__(self, output: str, out: TextIO | None = None):
        self.output = output
        self.out = out or sys.stdout

    @property
    def as_json(self) -> bool:
        return self.output == "json"

    def text(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def json(self, message) -> None:
        from google.protobuf import json_format

        self.text(json_format.MessageToJson(message, indent=None, ensure_ascii=False))

    def items(self, messages: Iterable, table: Table, row) -> None:
        if self.as_json:
            for message in messages:
                self.json(message)
        else:
            self.text(table.render(row(m) for m in messages))

    def stream(self, messages: Iterable, table: Table, row, widths: Sequence[int]) -> None:
        """Like items, for an endless stream: the table's widths are fixed up front."""
        if not self.as_json:
            self.text(table.line(list(table.headers), widths))
        for message in messages:
            if self.as_json:
                self.json(message)
            else:
                self.text(table.line(row(message), widths))
