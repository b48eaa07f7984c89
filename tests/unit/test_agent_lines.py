"""The agent's output handling: lines from output bytes, their levels, and
the rank it reads from the launcher's environment."""

import pytest
from trialplane.client.agent import environment
from trialplane.client.agent.lines import LineSplitter, level_of
from trialplane.v1 import log_pb2


def split(*chunks: bytes) -> list[str]:
    splitter = LineSplitter()
    out = [line for chunk in chunks for line in splitter.feed(chunk)]
    return out + splitter.flush()


def test_a_progress_bar_ships_its_last_frame_only():
    assert split(b"\rstep 1/3\rstep 2/3\rstep 3/3\ndone\n") == ["step 3/3", "done"]
    # Frames cut across reads, and a bar that ends with \r before its \n.
    assert split(b"\r10%", b"\r2", b"0%\r", b"\n") == ["20%"]
    assert split(b"windows\r\nline\r\n") == ["windows", "line"]
    assert split(b"a\n\nb\n") == ["a", "", "b"]


def test_an_unfinished_line_is_flushed_at_the_end():
    splitter = LineSplitter()
    assert splitter.feed(b"epoch 1\rpartial") == []
    assert splitter.pending() == "partial"
    assert splitter.flush() == ["partial"]
    assert splitter.flush() == []


def test_a_character_cut_between_reads_stays_whole():
    data = "loss 1e-05 ✓\n".encode()
    cut = data.index("✓".encode()) + 1
    assert split(data[:cut], data[cut:]) == ["loss 1e-05 ✓"]


def test_long_lines_are_cut_to_what_the_server_takes_without_splitting_characters():
    splitter = LineSplitter(max_line_bytes=10)
    out = splitter.feed("aaaaaaaaaé".encode() + b"bbbb\n")
    assert out == ["aaaaaaaaa", "ébbbb"]
    assert all(len(line.encode()) <= 10 for line in out)


def test_nul_bytes_become_replacement_characters():
    assert split(b"a\x00b\n") == ["a\ufffdb"]


@pytest.mark.parametrize(("line", "level"), [
    ("WARNING:root:low disk", log_pb2.LOG_LEVEL_WARNING),
    ("2024-05-01 12:00:00,123 ERROR trainer: nan loss", log_pb2.LOG_LEVEL_ERROR),
    ("[DEBUG] batch 3", log_pb2.LOG_LEVEL_DEBUG),
    ("FATAL: out of memory", log_pb2.LOG_LEVEL_CRITICAL),
    ("step 3 loss=1e-05", log_pb2.LOG_LEVEL_INFO),
    ("an Error in prose", log_pb2.LOG_LEVEL_INFO),
    ("ERRORS", log_pb2.LOG_LEVEL_INFO),
])
def test_level_of_a_line(line, level):
    assert level_of(line) == level


def test_the_rank_comes_from_the_first_launcher_variable_set():
    assert environment.rank_from({}) == 0
    assert environment.rank_from({"LOCAL_RANK": "1", "SLURM_PROCID": "5"}) == 5
    assert environment.rank_from({"RANK": "2", "OMPI_COMM_WORLD_RANK": "7"}) == 2
    assert environment.rank_from({"RANK": "", "LOCAL_RANK": "x", "SLURM_PROCID": "4"}) == 4
