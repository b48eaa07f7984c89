"""The CLI's output layer: rich's tables and the plain writer that takes
over past RICH_ROWS lay rows out alike; YAML and CSV parse back."""

import csv
import io

import yaml
from rich.cells import cell_len
from trialplane.client.cli import output
from trialplane.client.cli.output import Printer, Table
from trialplane.v1 import trial_pb2

TABLE = Table(["ID", "NAME", "STATE", "BEST"], flex="NAME", right={"ID", "BEST"})
ROWS = [
    ["1", "a-name-long-enough-to-be-cut-short-at-forty-columns", "RUNNING", 0.125],
    ["22", "wide 日本語 name", "QUEUED", None],
    ["333", "two\nlines\tand a tab", "ERROR", 1e-9],
]


def test_rich_and_the_plain_writer_lay_out_the_same_lines(monkeypatch):
    by_rich = TABLE.render(ROWS, width=40).splitlines()
    monkeypatch.setattr(output, "RICH_ROWS", 0)
    assert TABLE.render(ROWS, width=40).splitlines() == by_rich
    assert by_rich == [
        " ID  NAME                 STATE     BEST",
        "  1  a-name-long-enough…  RUNNING  0.125",
        " 22  wide 日本語 name     QUEUED",
        "333  two lines and a tab  ERROR    1e-09",
    ]


def test_a_table_fits_the_width_cuts_the_flex_column_and_has_no_trailing_blanks():
    lines = TABLE.render(ROWS, width=40).splitlines()
    assert lines[0].split() == ["ID", "NAME", "STATE", "BEST"]
    assert lines[1].split()[1].endswith("…") and lines[1].split()[3] == "0.125"
    # Wide characters take two columns each, and the STATE column still lines up on screen.
    assert cell_len(lines[2][:lines[2].index("QUEUED")]) == lines[1].index("RUNNING")
    assert lines[3].split()[1:4] == ["two", "lines", "and"]
    assert all(line == line.rstrip() and "\x1b" not in line for line in lines)
    assert max(len(line) for line in lines) <= 40


def test_a_stream_of_yaml_items_is_one_list_and_csv_keeps_every_digit():
    buffer = io.StringIO()
    trials = [trial_pb2.Trial(id=i, name=f"t{i}") for i in (1, 2)]
    Printer("yaml", buffer).stream(iter(trials), TABLE, lambda t: [t.id, t.name, "", None], [3, 8, 7, 5])
    assert yaml.safe_load(buffer.getvalue()) == [{"id": "1", "name": "t1"}, {"id": "2", "name": "t2"}]
    empty = io.StringIO()
    Printer("yaml", empty).stream(iter([]), TABLE, None, [3, 8, 7, 5])
    assert yaml.safe_load(empty.getvalue()) == []

    buffer = io.StringIO()
    Printer("csv", buffer).items(ROWS, TABLE, lambda r: r)
    rows = list(csv.reader(io.StringIO(buffer.getvalue())))
    assert rows[0] == ["ID", "NAME", "STATE", "BEST"]
    assert rows[3] == ["333", "two\nlines\tand a tab", "ERROR", "1e-09"] and float(rows[1][3]) == 0.125
