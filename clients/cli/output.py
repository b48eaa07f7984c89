"""How the command prints: tables, JSON Lines, YAML or CSV.

A table is laid out by rich: columns aligned by the cells' width on screen
(so wide characters line up), the flex column cut short with an ellipsis
when the rows would not fit the terminal (80 columns when there is none).
On a terminal the headers are bold; elsewhere the output is plain text with
no colour, no box characters and no trailing blanks, so it greps. rich
lays out about 3,000 rows a second, so a table of more rows than RICH_ROWS
(a long metric history) is written here with the same layout and rich's
cell widths, unstyled.

JSON is JSON Lines: the protobuf JSON mapping of each item on a line of its
own, as grpcurl spells it. YAML is that same mapping as one YAML list of
the items (one mapping for a command that shows one thing); CSV is a header
and a row per item with the table's columns and cells. rich and PyYAML are
imported when they are first used, so `trialplane --help` stays quick.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

ELLIPSIS = "…"
GAP = "  "
MIN_FLEX_WIDTH = 8
RICH_ROWS = 1000
OUTPUTS = ("table", "json", "yaml", "csv")


def terminal_width() -> int:
    return shutil.get_terminal_size((80, 24)).columns


def _cell_len(text: str) -> int:
    from rich.cells import cell_len

    return cell_len(text)


def cell_text(value) -> str:
    """A table cell: numbers in 6 significant digits, None empty, text on
    one line (a newline or tab in a message would break the row)."""
    text = value if isinstance(value, str) else number(value)
    return text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ").replace("\t", " ")


def clip(text: str, width: int) -> str:
    from rich.cells import set_cell_size

    if _cell_len(text) <= width:
        return text
    return set_cell_size(text, max(width - 1, 0)) + ELLIPSIS if width > 0 else ""


@dataclass
class Table:
    """Columns by header; rows hold strings, numbers (see cell_text) or None.
    flex names the column that is cut short (with an ellipsis) when the rows
    would not fit the width; right holds the columns aligned to the right
    (numbers)."""

    headers: Sequence[str]
    flex: str | None = None
    right: set[str] = field(default_factory=set)

    def widths(self, rows: Sequence[Sequence], width: int) -> list[int]:
        widths = [max([_cell_len(h)] + [_cell_len(r[i]) for r in rows]) for i, h in enumerate(self.headers)]
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

    def lines(self, rows: Sequence[Sequence], widths: Sequence[int], *, header: bool = True,
              styled: bool = False) -> list[str]:
        """The rows (after the header, when header) in the given column widths."""
        rows = [[cell_text(c) for c in r] for r in rows]
        if len(rows) <= RICH_ROWS:
            return _rich_lines(self, rows, widths, header, styled)
        return [self._plain_line(r, widths) for r in ([list(self.headers)] if header else []) + rows]

    def _plain_line(self, cells: Sequence[str], widths: Sequence[int]) -> str:
        out = []
        for header, cell, w in zip(self.headers, cells, widths):
            cell = clip(cell, w)
            pad = " " * (w - _cell_len(cell))
            out.append(pad + cell if header in self.right else cell + pad)
        return GAP.join(out).rstrip()

    def line(self, cells: Sequence[str], widths: Sequence[int]) -> str:
        return self.lines([cells], widths, header=False)[0]

    def render(self, rows: Iterable[Sequence], width: int | None = None, styled: bool = False) -> str:
        rows = [[cell_text(c) for c in r] for r in rows]
        return "\n".join(self.lines(rows, self.widths(rows, width or terminal_width()), styled=styled))


def _rich_lines(table: Table, rows: Sequence[Sequence], widths: Sequence[int], header: bool,
                styled: bool) -> list[str]:
    from rich.console import Console
    from rich.table import Table as RichTable

    buffer = io.StringIO()
    total = sum(widths) + len(GAP) * (len(widths) - 1)
    console = Console(file=buffer, width=max(total, 1), force_terminal=styled, color_system="standard" if styled else None,
                      no_color=not styled, highlight=False, markup=False, emoji=False, soft_wrap=False)
    grid = RichTable(box=None, show_edge=False, pad_edge=False, padding=(0, len(GAP) // 2), show_header=header,
                     header_style="bold" if styled else "")
    for name, w in zip(table.headers, widths):
        grid.add_column(name, justify="right" if name in table.right else "left", no_wrap=True, overflow="ellipsis",
                        width=w)
    for row in rows:
        grid.add_row(*row)
    console.print(grid)
    return [line.rstrip() for line in buffer.getvalue().splitlines()]


def write_table(table: Table, rows: Iterable[Sequence], out: TextIO | None = None) -> None:
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


def when_us(microseconds: int) -> str:
    """Microseconds since the epoch in local time to the millisecond, "" when 0."""
    if not microseconds:
        return ""
    moment = dt.datetime.fromtimestamp(microseconds / 1e6)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


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
    if isinstance(value, int):
        return str(value)
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


def _document(item) -> Any:
    """A protobuf message in its JSON mapping; a mapping as it is."""
    if isinstance(item, Mapping):
        return dict(item)
    from google.protobuf import json_format

    return json_format.MessageToDict(item)


def _yaml(value) -> str:
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(value, Dumper=dumper, sort_keys=False, allow_unicode=True, default_flow_style=False)


class Printer:
    """Prints items as a table, JSON Lines, YAML or CSV, flushing as it goes
    so a follow shows up at once. An item is a protobuf message (or, for the
    few commands that report something else, a plain mapping)."""

    def __init__(self, output: str, out: TextIO | None = None):
        self.output = output
        self.out = out or sys.stdout
        self._csv: Any = None

    @property
    def as_json(self) -> bool:
        return self.output == "json"

    @property
    def as_table(self) -> bool:
        return self.output == "table"

    @property
    def styled(self) -> bool:
        isatty = getattr(self.out, "isatty", None)
        return bool(isatty and isatty())

    def text(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def json(self, message) -> None:
        if isinstance(message, Mapping):
            import json

            self.text(json.dumps(message, ensure_ascii=False))
            return
        from google.protobuf import json_format

        self.text(json_format.MessageToJson(message, indent=None, ensure_ascii=False))

    def table(self, table: Table, rows: Iterable[Sequence]) -> None:
        self.text(table.render(rows, styled=self.styled))

    def csv_rows(self, headers: Sequence[str], rows: Iterable[Sequence]) -> None:
        """A header and the rows; numbers keep every digit (repr), None is empty."""
        writer = csv.writer(self.out, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows(rows)
        self.out.flush()

    def items(self, messages: Iterable, table: Table, row) -> None:
        """A listing, in the output asked for."""
        if self.output == "json":
            for message in messages:
                self.json(message)
        elif self.output == "yaml":
            self.text(_yaml([_document(m) for m in messages]).rstrip("\n"))
        elif self.output == "csv":
            self.csv_rows(table.headers, (row(m) for m in messages))
        else:
            self.table(table, (row(m) for m in messages))

    def one(self, message, table: Table, row) -> None:
        """One item a command shows (not as a table: the caller lays it out):
        JSON on one line, one YAML mapping, or a CSV header and row."""
        if self.output == "yaml":
            self.text(_yaml(_document(message)).rstrip("\n"))
        else:
            self.items([message], table, row)

    def stream(self, messages: Iterable, table: Table, row, widths: Sequence[int]) -> None:
        """Like items, for an endless stream: the table's widths are fixed up
        front, and YAML items are written one list entry at a time, so
        what was printed so far is always one valid YAML list."""
        self.stream_rows(((m, [row(m)]) for m in messages), table, widths)

    def stream_rows(self, batches: Iterable[tuple[Any, Sequence[Sequence[str]]]], table: Table,
                    widths: Sequence[int]) -> None:
        """A stream of (item, its table rows): an item may make several rows
        (a metric series as a row per point)."""
        started = False
        if self.output == "table":
            self.text(table.lines([], widths, styled=self.styled)[0])
        elif self.output == "csv":
            self.csv_rows(table.headers, [])
        for item, rows in batches:
            if self.output == "json":
                self.json(item)
            elif self.output == "yaml":
                self.text(_yaml([_document(item)]).rstrip("\n"))
            elif self.output == "csv":
                csv.writer(self.out, lineterminator="\n").writerows(rows)
                self.out.flush()
            elif rows:
                self.text("\n".join(table.lines(rows, widths, header=False, styled=self.styled)))
            started = True
        if self.output == "yaml" and not started:
            self.text("[]")
