"""A journal of records that survive the server process, in a mapped file.

The file has a fixed size, reserved on disk when it is created (so a full
disk cannot fault a write into the mapping), and is mapped into memory. A
record is a header (length, generation, CRC-32) and its bytes, copied into
the mapping: no system call and no release of the GIL. Once copied the bytes
are in the operating system's page cache, so a killed or crashed server
process loses none of them, which is what SQLite promises for a commit in
WAL mode with synchronous=NORMAL.

The file starts with the offset of the first record not stored elsewhere
yet, so a restart replays only those. Emptying the journal zeroes the first
header and starts a new generation; records left from an older generation
further on are never read, because reading stops at the first record that
is empty, of another generation, cut short or fails its checksum.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import struct
import zlib

log = logging.getLogger(__name__)

HEADER = struct.Struct("<III")
# The offset of the first record not yet stored elsewhere.
START = struct.Struct("<Q")
FIRST = START.size
CAPACITY = 8 << 20


def _reserve(fd: int, size: int) -> None:
    """Allocates the file's blocks now, so writes through the mapping never
    need disk space the disk no longer has."""
    try:
        os.posix_fallocate(fd, 0, size)
        return
    except (AttributeError, OSError):
        pass  # macOS has no posix_fallocate; some file systems refuse it
    zeros = bytes(1 << 20)
    for offset in range(0, size, len(zeros)):
        os.pwrite(fd, zeros[:size - offset], offset)


class JournalFull(OSError):
    pass


class JournalBusy(OSError):
    """Another process has the journal open."""


class Journal:
    def __init__(self, path: str, capacity: int = CAPACITY):
        self.path = path
        self.capacity = capacity
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            # One process per journal: a second server on the same database
            # would overwrite and empty what the first acknowledged.
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise JournalBusy(f"journal {path} is in use by another process") from None
        self._map = self._map_file(truncate=False)
        self._generation = 1
        self.size = FIRST

    def _map_file(self, truncate: bool) -> mmap.mmap:
        if truncate:
            os.ftruncate(self._fd, 0)
        if os.fstat(self._fd).st_size < self.capacity:
            _reserve(self._fd, self.capacity)
        return mmap.mmap(self._fd, self.capacity)

    def append(self, payload: bytes) -> int:
        """Adds a record; returns its offset."""
        start = self.size
        end = start + HEADER.size + len(payload)
        if end > self.capacity:
            raise JournalFull(f"journal {self.path} is full ({self.capacity} bytes)")
        # One copy; a process killed in the middle of it leaves a record
        # whose checksum fails, and reading stops there.
        self._map[start:end] = HEADER.pack(len(payload), self._generation, zlib.crc32(payload)) + payload
        self.size = end
        return start

    def stored_until(self, offset: int) -> None:
        """Records before offset are stored elsewhere: a restart skips them."""
        START.pack_into(self._map, 0, offset)

    def records(self) -> list[bytes]:
        """Every whole record of the current generation not marked stored, oldest first."""
        view = self._map
        (pos,) = START.unpack_from(view, 0)
        if not FIRST <= pos < self.capacity:
            pos = FIRST
        out = []
        generation = None
        while pos + HEADER.size <= self.capacity:
            length, gen, crc = HEADER.unpack_from(view, pos)
            if length == 0 or (generation is not None and gen != generation):
                break
            payload = view[pos + HEADER.size:pos + HEADER.size + length]
            if len(payload) != length or zlib.crc32(payload) != crc:
                log.warning("journal %s: dropped a record cut off by a crash at byte %d", self.path, pos)
                break
            generation = gen
            out.append(payload)
            pos += HEADER.size + length
        if generation is not None:
            self._generation = generation
            self.size = pos
        return out

    def clear(self) -> None:
        """Empties the journal; called once everything in it is stored elsewhere."""
        if self.size > FIRST:
            HEADER.pack_into(self._map, FIRST, 0, 0, 0)
            START.pack_into(self._map, 0, FIRST)
            self._generation = self._generation % 0xFFFFFFFF + 1
            self.size = FIRST

    def reset(self) -> None:
        """Empties the whole file, records of every generation; for start-up,
        once what the last process left is stored."""
        self._map.close()
        self._map = self._map_file(truncate=True)
        self._generation = 1
        self.size = FIRST

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)
