"""Sidecar mode: the training runs in another container, which shares a log
file and its process id or an exit marker with the agent (Katib's shape).

FileFollower tails the log file by polling, as `tail -F` does: it waits for
the file to appear, reads from its start, notices rotation (the path names
another file: the old one is read to its end first) and truncation (the file
is shorter than what was read: read again from the start).

TrainingEnd tells when the training is over: the process has exited, or the
marker file holds its exit status (a number, or "completed" as Katib's
wrapper writes).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .lines import LineSplitter

READ_BYTES = 256 * 1024


class FileFollower:
    def __init__(self, path: Path, on_line: Callable[[str], None], poll_interval: float = 0.1):
        self.path = path
        self.on_line = on_line
        self.poll_interval = poll_interval
        self.splitter = LineSplitter()
        self._file: BinaryIO | None = None
        self._inode: tuple[int, int] | None = None
        self._offset = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trialplane-follow", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Reads what the file holds now to its end, then stops."""
        self._stop.set()
        self._thread.join(timeout)
        for line in self.splitter.flush():
            self.on_line(line)
        if self._file is not None:
            self._file.close()

    def pending_text(self) -> str:
        return self.splitter.pending()

    def _open(self) -> bool:
        try:
            f = open(self.path, "rb")
        except OSError:
            return False
        st = os.fstat(f.fileno())
        self._file, self._inode, self._offset = f, (st.st_dev, st.st_ino), 0
        return True

    def _read_available(self) -> bool:
        """Reads to the current end of the open file; True if it read anything."""
        assert self._file is not None
        got = False
        while True:
            data = self._file.read(READ_BYTES)
            if not data:
                return got
            got = True
            self._offset += len(data)
            for line in self.splitter.feed(data):
                self.on_line(line)

    def _check_path(self) -> None:
        """After reaching the end: reopen a rotated file, rewind a truncated one."""
        assert self._file is not None
        try:
            st = os.stat(self.path)
        except OSError:
            return  # rotated away and not created again yet: keep the old one
        if (st.st_dev, st.st_ino) != self._inode:
            self._read_available()
            for line in self.splitter.flush():
                self.on_line(line)
            self._file.close()
            self._file = None
            self._open()
        elif st.st_size < self._offset:
            self._file.seek(0)
            self._offset = 0

    def _step(self) -> bool:
        if self._file is None and not self._open():
            return False
        if self._read_available():
            return True
        self._check_path()
        return self._file is not None and self._read_available()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._step():
                self._stop.wait(self.poll_interval)
        # One last pass, so what was written before the end is read.
        while self._step():
            pass


def process_alive(pid: int) -> bool:
    """Whether pid names a process that has not exited (a zombie has)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state is the field after the parenthesised command name.
    return stat[stat.rfind(")") + 2:][:1] not in ("Z", "X")


@dataclass(frozen=True)
class Ended:
    # None when the process exited and there is no marker to say how.
    exit_code: int | None
    text: str = ""


def read_marker(path: Path) -> Ended | None:
    """The exit status a marker file holds, None while there is no file. A
    number is the exit code; "completed" (Katib's word) is 0; other text is
    1; an empty file says nothing of the status (exit_code None)."""
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return None
    if not text:
        return Ended(None)
    if re.fullmatch(r"-?\d+", text):
        return Ended(int(text), text)
    return Ended(0 if text.lower() == "completed" else 1, text)


class TrainingEnd:
    """Polled by the agent: ended() is None while the training runs.

    An empty marker, or a process gone while a marker is expected, is given
    marker_wait seconds for the status to be written before it counts."""

    def __init__(self, pid: int | None, marker: Path | None, marker_wait: float = 2.0):
        self.pid, self.marker, self.marker_wait = pid, marker, marker_wait
        self._unsure_since: float | None = None

    def ended(self) -> Ended | None:
        found = read_marker(self.marker) if self.marker is not None else None
        if found is not None and found.exit_code is not None:
            return found
        if found is None and (self.pid is None or process_alive(self.pid)):
            return None
        if self.marker is None:
            return Ended(None)
        if self._unsure_since is None:
            self._unsure_since = time.monotonic()
        if time.monotonic() - self._unsure_since < self.marker_wait:
            return None
        return Ended(None)
