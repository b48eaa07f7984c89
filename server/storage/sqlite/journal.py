"""An append-only file of records that survive the server process.

A record is its length, its CRC-32 and its bytes, written with one write()
call. Once write() returned the bytes are in the operating system's page
cache: a killed or crashed server process loses none of them, which is the
same promise SQLite makes for a commit in WAL mode with synchronous=NORMAL.
Reading stops at the first record that is short or fails its checksum (a
write cut off by a crash); everything before it is returned.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib

log = logging.getLogger(__name__)

HEADER = struct.Struct("<II")


class Journal:
    def __init__(self, path: str):
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self.size = os.fstat(self._fd).st_size

    def append(self, payload: bytes) -> None:
        record = HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        written = os.write(self._fd, record)
        if written != len(record):
            # A short write (disk full) leaves a torn record that reading
            # skips; the caller hears that nothing was kept.
            os.ftruncate(self._fd, self.size)
            raise OSError(f"journal {self.path}: wrote {written} of {len(record)} bytes")
        self.size += written

    def records(self) -> list[bytes]:
        """Every whole record, oldest first."""
        with open(self.path, "rb") as f:
            data = f.read()
        out, pos = [], 0
        while pos + HEADER.size <= len(data):
            length, crc = HEADER.unpack_from(data, pos)
            payload = data[pos + HEADER.size:pos + HEADER.size + length]
            if len(payload) != length or zlib.crc32(payload) != crc:
                break
            out.append(payload)
            pos += HEADER.size + length
        if pos != len(data):
            log.warning("journal %s: dropped %d bytes of a record cut off by a crash", self.path, len(data) - pos)
        return out

    def clear(self) -> None:
        """Empties the file; called once everything in it is stored elsewhere."""
        if self.size:
            os.ftruncate(self._fd, 0)
            self.size = 0

    def close(self) -> None:
        os.close(self._fd)
