"""A journal of records that survive the server process, in a mapped file.

The file has a fixed size, reserved on disk when it is created (so a full
disk cannot fault a write into the mapping), and is mapped into memory. A
record is a header (length, generation, CRC-32) and its bytes, copied into
the mapping: no system call and no release of the GIL. Once copied the bytes
are in the operating system's page cache, so a killed or crashed server
process loses none of them, which is what SQLite promises for a commit in
WAL mode with synchronous=NORMAL.

Emptying the journal zeroes the first header and starts a new generation;
records left from an older generation further on are never read, because
reading stops at the first record that is empty, of another generation,
cut short or fails its checksum.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
import zlib

log = logging.getLogger(__name__)

HEADER = struct.Struct("<III")
CAPACITY = 8 << 20


class JournalFull(OSError):
    pass


class Journal:
    def __init__(self, path: str, capacity: int = CAPACITY):
        self.path = path
        self.capacity = capacity
        self._map = self._open(truncate=False)
        self._generation = 1
        self.size = 0

    def _open(self, truncate: bool) -> mmap.mmap:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if truncate:
                os.ftruncate(fd, 0)
            if os.fstat(fd).st_size < self.capacity:
                os.posix_fallocate(fd, 0, self.capacity)
            return mmap.mmap(fd, self.capacity)
        finally:
            os.close(fd)

    def append(self, payload: bytes) -> None:
        end = self.size + HEADER.size + len(payload)
        if end > self.capacity:
            raise JournalFull(f"journal {self.path} is full ({self.capacity} bytes)")
        self._map[self.size + HEADER.size:end] = payload
        # The header last: a record is there only once all of it is.
        HEADER.pack_into(self._map, self.size, len(payload), self._generation, zlib.crc32(payload))
        self.size = end

    def records(self) -> list[bytes]:
        """Every whole record of the current generation, oldest first."""
        out, pos = [], 0
        view = self._map
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
        if self.size:
            HEADER.pack_into(self._map, 0, 0, 0, 0)
            self._generation = self._generation % 0xFFFFFFFF + 1
            self.size = 0

    def reset(self) -> None:
        """Empties the whole file, records of every generation; for start-up,
        once what the last process left is stored."""
        self._map.close()
        self._map = self._open(truncate=True)
        self._generation = 1
        self.size = 0

    def close(self) -> None:
        self._map.close()
