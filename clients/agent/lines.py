"""Output bytes into log lines, the way a terminal would show them.

A line ends at `\\n`. A carriage return moves back to the start of the line,
so a progress bar that redraws itself with `\\r` shows only its last frame
when the line ends: that frame is the line shipped, not every redraw. `\\r\\n`
is an ordinary line end. Bytes are split before they are decoded, so a UTF-8
character cut across two reads stays whole; a line longer than the server
takes is cut into several.
"""

from __future__ import annotations

import re

from trialplane.v1 import log_pb2

# The server's limit is 65,536 characters; in bytes it can only be shorter.
MAX_LINE_BYTES = 65536


def _cut_point(data: bytes | bytearray, limit: int) -> int:
    """Where to cut data (longer than limit) at or below limit without
    splitting a UTF-8 character: back over at most three continuation bytes."""
    cut = limit
    for _ in range(3):
        if (data[cut] & 0xC0) != 0x80:
            break
        cut -= 1
    return cut or limit


def decode(data: bytes | bytearray) -> str:
    # PostgreSQL text cannot hold NUL, and a line is text for people.
    return bytes(data).decode("utf-8", "replace").replace("\x00", "\ufffd")


class LineSplitter:
    """Feed it bytes as they are read; it returns the lines they complete."""

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES):
        self.max_line_bytes = max_line_bytes
        self._frame = bytearray()
        # A `\r` was seen: the next text starts a new frame of the line.
        self._rewind = False

    def feed(self, data: bytes) -> list[str]:
        lines: list[str] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            self._absorb(data[start:end], lines)
            lines.append(decode(self._frame))
            self._frame.clear()
            self._rewind = False
            start = end + 1
        self._absorb(data[start:], lines)
        return lines

    def flush(self) -> list[str]:
        """The unfinished line's last frame, at the end of the stream."""
        if not self._frame:
            return []
        line = decode(self._frame)
        self._frame.clear()
        self._rewind = False
        return [line]

    def pending(self) -> str:
        """What the unfinished line shows now (for a failure reason)."""
        return decode(self._frame)

    def _absorb(self, chunk: bytes, lines: list[str]) -> None:
        for i, piece in enumerate(chunk.split(b"\r")):
            if i:
                self._rewind = True
            if not piece:
                continue
            if self._rewind:
                self._frame[:] = piece
                self._rewind = False
            else:
                self._frame += piece
            while len(self._frame) > self.max_line_bytes:
                cut = _cut_point(self._frame, self.max_line_bytes)
                lines.append(decode(self._frame[:cut]))
                del self._frame[:cut]


_LEVEL_WORD = re.compile(
    r"(?:^|[\s\[(|:-])(TRACE|DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)(?=[\s\])|:-]|$)"
)
_LEVELS = {
    "TRACE": log_pb2.LOG_LEVEL_TRACE,
    "DEBUG": log_pb2.LOG_LEVEL_DEBUG,
    "INFO": log_pb2.LOG_LEVEL_INFO,
    "WARN": log_pb2.LOG_LEVEL_WARNING,
    "WARNING": log_pb2.LOG_LEVEL_WARNING,
    "ERROR": log_pb2.LOG_LEVEL_ERROR,
    "CRITICAL": log_pb2.LOG_LEVEL_CRITICAL,
    "FATAL": log_pb2.LOG_LEVEL_CRITICAL,
}


def level_of(line: str) -> int:
    """The level a line names near its start in capitals, as logging formats
    print it ("WARNING:root:...", "2024-05-01 12:00:00 ERROR ...", "[INFO]"),
    else INFO: a word further in is more likely text than a level."""
    match = _LEVEL_WORD.search(line[:48])
    return _LEVELS[match.group(1)] if match else log_pb2.LOG_LEVEL_INFO
