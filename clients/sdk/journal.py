"""The metric journal of one trial run: a memory-mapped file that log()
appends to and a sender thread reads from, so that no point waits for the
network and none is lost when the server or the training process dies.

What it promises:
- An append is a copy into shared memory under a lock, never a system call
  (except when the file grows), so the caller never waits for a disk or a
  server. A process killed by SIGKILL leaves every completed append in the
  page cache; the kernel writes it out.
- Every record carries its logical offset and a CRC-32. Reopening follows
  the records from the first one still needed and stops at the first that
  does not check out: a record torn by a kill mid-copy is cut, the records
  before it are kept, and new appends overwrite it.
- The sender acknowledges offsets as the server settles them; the offset is
  kept in the header (two alternating slots with a sequence number and a
  CRC, so a torn header write leaves the previous slot) and fsync'd at most
  about once a second. Reopening resends only what was not acknowledged.
- The file is a ring of `capacity` bytes (default 1 GiB) behind a 4 KiB
  header. While the server is unreachable the unacknowledged records pile
  up; past the capacity the oldest are dropped, counted in the header.
  With the server keeping up, the writer goes back to the start of the ring
  once it is past `soft_size` bytes, so the file stays small; the file only
  grows (sparse, by doubling) as far as the writer has been.

Layout. Header: identity (magic, version, capacity, trial, run, a random
journal id, the server address) with a CRC, then two state slots (sequence,
acknowledged offset, first needed offset, dropped points, the range of the
batch in flight, epoch, a final trial state left for `trialplane sync`). A record: crc, length, offset,
kind, value count, blob length, step, time (40 bytes), then the values as
little-endian float64, then the blob; 8-byte aligned. A POINTS record's blob
is the group and the metric names joined by NUL; a CHECKPOINT record's is a
serialized ReportCheckpointRequest; a PAD record says "continue at logical
offset `step`" and is how the ring wraps or skips a region still in use.
Physical position = logical offset mod capacity.

This module knows nothing of gRPC: the sender (delivery.py) turns records
into requests.
"""

from __future__ import annotations

import os
import re
import secrets
import struct
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

import mmap

MAGIC = b"TPJRNL01"
VERSION = 1
HEADER_SIZE = 4096
IDENTITY = struct.Struct("<8sIIQqqQqH")  # magic, version, header size, capacity, trial, run, journal id, created, address length
ADDRESS_AT, ADDRESS_MAX = 64, 256
IDENTITY_CRC_AT = ADDRESS_AT + ADDRESS_MAX
# sequence, acknowledged, first needed, dropped points, batch in flight (begin, end), epoch, final state, reason length
STATE = struct.Struct("<QQQQQQIII")
REASON_MAX = 512
STATE_SLOTS = (1024, 2048)
STATE_CRC_AT = STATE.size + REASON_MAX

RECORD = struct.Struct("<IIQHHIqq")  # crc, length, offset, kind, count, blob length, step, time
RECORD_SIZE = RECORD.size  # 40
RECORD_BODY = struct.Struct("<IQHHIqq")  # the record header after its crc
POINTS, PAD, CHECKPOINT = 1, 2, 3

DEFAULT_CAPACITY = 1 << 30
MIN_CAPACITY = 64 << 10
DEFAULT_SOFT_SIZE = 64 << 20
INITIAL_DATA_SIZE = 1 << 20
# Values and names per record: the server takes at most 1,000 names per call.
MAX_VALUES = 1000
FSYNC_INTERVAL = 1.0
SUFFIX = ".journal"

_ZEROS = bytes(8)


class JournalError(Exception):
    """A file that is not a journal, or whose header is damaged."""


class JournalBusy(JournalError):
    """Another live process has the journal open."""


def _align(n: int) -> int:
    return (n + 7) & ~7


_value_structs: dict[int, struct.Struct] = {}


def _values_struct(count: int) -> struct.Struct:
    packer = _value_structs.get(count)
    if packer is None:
        packer = _value_structs[count] = struct.Struct(f"<{count}d")
    return packer


def names_blob(group: str, names: Iterable[str]) -> bytes:
    """What a POINTS record stores for its group and metric names."""
    return "\0".join([group, *names]).encode()


def split_blob(blob: bytes) -> tuple[str, list[str]]:
    group, *names = blob.decode().split("\0")
    return group, names


# --- where journals live ------------------------------------------------------


def server_directory(journal_dir: str | os.PathLike, address: str) -> Path:
    """The subdirectory of journal_dir for one server, so that trial 7 of two
    servers never share a file."""
    return Path(journal_dir) / (re.sub(r"[^A-Za-z0-9.-]+", "_", address).strip("_") or "server")


def journal_name(trial_id: int, trial_run_id: int, index: int = 1) -> str:
    suffix = "" if index == 1 else f".{index}"
    return f"trial-{trial_id}.run-{trial_run_id}{suffix}{SUFFIX}"


def run_journals(directory: str | os.PathLike, trial_id: int, trial_run_id: int) -> list[Path]:
    """The journal files of one trial run in a server's directory, the first one first."""
    directory = Path(directory)
    pattern = re.compile(rf"trial-{trial_id}\.run-{trial_run_id}(?:\.(\d+))?{re.escape(SUFFIX)}$")
    found = []
    if directory.is_dir():
        for path in directory.iterdir():
            match = pattern.match(path.name)
            if match:
                found.append((int(match.group(1) or 1), path))
    return [path for _, path in sorted(found)]


def find_journals(path: str | os.PathLike) -> list[Path]:
    """A journal file itself, or every journal file under a directory."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    return sorted(p for p in path.rglob(f"*{SUFFIX}") if p.is_file())


# --- records ------------------------------------------------------------------


@dataclass(slots=True)
class Record:
    """One record as the sender sees it. values is the raw float64 bytes."""

    offset: int
    end: int
    kind: int
    count: int
    step: int
    time_us: int
    blob: bytes
    values: bytes


def parse_records(buffer: bytes, begin: int, max_records: int) -> tuple[list[Record], int]:
    """The whole records in buffer, which holds the journal from logical
    offset begin (PAD records are followed, not returned). Returns them and
    the offset after the last one read. Stops at a record that does not
    check out, which only happens at the end of what was copied."""
    view = memoryview(buffer)
    records: list[Record] = []
    expected, at, size = begin, 0, len(buffer)
    while len(records) < max_records and at + RECORD_SIZE <= size:
        crc, length, offset, kind, count, blob_len, step, time_us = RECORD.unpack_from(buffer, at)
        body_end = RECORD_SIZE + 8 * count + blob_len
        if offset != expected or length < RECORD_SIZE or length % 8 or body_end > length or at + length > size:
            break
        if zlib.crc32(view[at + 4: at + body_end]) != crc:
            break
        if kind == PAD:
            if step <= offset:
                break
            expected = step
        else:
            values_end = at + RECORD_SIZE + 8 * count
            records.append(Record(offset, offset + length, kind, count, step, time_us,
                                  bytes(view[values_end: at + body_end]), bytes(view[at + RECORD_SIZE: values_end])))
            expected = offset + length
        at += length
    return records, expected


# --- the journal ----------------------------------------------------------------


class _Extent:
    """Records that lie back to back both logically and physically, between
    two PAD jumps. lend includes the PAD that ends a closed extent."""

    __slots__ = ("lstart", "lend", "pstart")

    def __init__(self, lstart: int, lend: int, pstart: int):
        self.lstart, self.lend, self.pstart = lstart, lend, pstart

    @property
    def size(self) -> int:
        return self.lend - self.lstart

    def __repr__(self) -> str:
        return f"_Extent({self.lstart}, {self.lend}, p{self.pstart})"


@dataclass
class RecoveryReport:
    """What reopening a journal found: records and points not yet
    acknowledged, and the offset of a torn record that was cut (None when
    the records ended cleanly)."""

    records: int = 0
    points: int = 0
    cut_at: int | None = None


class Journal:
    """One trial run's journal file, opened by one process at a time (an
    exclusive flock). Thread-safe: appends from any thread, one sender."""

    def __init__(self, path: Path, fd: int, *, soft_size: int | None = None):
        self.path = path
        self._fd = fd
        self._lock = threading.Lock()
        self._mm: mmap.mmap | None = None
        self.capacity = 0
        self.trial_id = self.trial_run_id = 0
        self.journal_id = 0
        self.address = ""
        self.created_us = 0
        self._soft_size_arg = soft_size
        self._soft_size = 0
        # State kept in the header.
        self._sequence = 0
        self.acknowledged = 0
        self.dropped_points = 0
        self.epoch = 0
        self.final_state = 0
        self.final_reason = ""
        self._in_flight = (0, 0)
        # The range of the batch that was in flight when the last process
        # stopped: sent again first, as it was, so the server answers it as
        # the first time.
        self.resend: tuple[int, int] | None = None
        # In memory only.
        self._extents: list[_Extent] = []
        self._tail = 0
        self._read_cursor = 0
        self.pending_records = 0
        self.pending_points = 0
        self.dropped_records = 0
        self._dirty_since_sync = False
        self._last_sync = 0.0
        self.recovery = RecoveryReport()

    # --- opening and closing

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        *,
        trial_id: int | None = None,
        trial_run_id: int | None = None,
        address: str = "",
        capacity: int = DEFAULT_CAPACITY,
        soft_size: int | None = None,
        create: bool = True,
    ) -> Journal:
        """Opens the journal at path, creating it when create and it does not
        exist (trial_id and trial_run_id are then needed). JournalBusy when
        another process has it open; JournalError when it is not a journal or
        belongs to another trial run."""
        path = Path(path)
        flags = os.O_RDWR | (os.O_CREAT if create else 0)
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, flags, 0o600)
        except FileNotFoundError:
            raise JournalError(f"{path}: no such journal") from None
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise JournalBusy(f"{path} is open in another process") from None
            journal = cls(path, fd, soft_size=soft_size)
            if os.fstat(fd).st_size == 0:
                if not create or trial_id is None or trial_run_id is None:
                    raise JournalError(f"{path} is empty")
                journal._initialise(trial_id, trial_run_id, address, capacity)
            else:
                journal._recover()
                if trial_id is not None and (journal.trial_id, journal.trial_run_id) != (trial_id, trial_run_id):
                    raise JournalError(
                        f"{path} holds trial {journal.trial_id} run {journal.trial_run_id}, not trial {trial_id} run {trial_run_id}")
            return journal
        except BaseException:
            os.close(fd)
            raise

    def _initialise(self, trial_id: int, trial_run_id: int, address: str, capacity: int) -> None:
        if capacity < MIN_CAPACITY:
            raise ValueError(f"a journal holds at least {MIN_CAPACITY} bytes, not {capacity}")
        self.capacity = capacity - capacity % 8
        self.trial_id, self.trial_run_id = trial_id, trial_run_id
        self.journal_id = secrets.randbits(63)
        self.created_us = time.time_ns() // 1000
        self.address = address
        self._soft_size = self._pick_soft_size()
        os.ftruncate(self._fd, HEADER_SIZE + min(self.capacity, self._soft_size, INITIAL_DATA_SIZE))
        self._map()
        encoded = address.encode()[:ADDRESS_MAX]
        identity = bytearray(IDENTITY_CRC_AT)
        IDENTITY.pack_into(identity, 0, MAGIC, VERSION, HEADER_SIZE, self.capacity, trial_id, trial_run_id,
                           self.journal_id, self.created_us, len(encoded))
        identity[ADDRESS_AT: ADDRESS_AT + len(encoded)] = encoded
        mm = self._map_or_fail()
        mm[0:IDENTITY_CRC_AT] = bytes(identity)
        struct.pack_into("<I", mm, IDENTITY_CRC_AT, zlib.crc32(identity))
        self._extents = [_Extent(0, 0, 0)]
        self._write_state()
        os.fsync(self._fd)

    def _pick_soft_size(self) -> int:
        soft = self._soft_size_arg if self._soft_size_arg is not None else DEFAULT_SOFT_SIZE
        return max(min(soft, self.capacity), 4 * RECORD_SIZE)

    def _map(self) -> None:
        if self._mm is not None:
            self._mm.close()
        self._mm = mmap.mmap(self._fd, os.fstat(self._fd).st_size)

    def _map_or_fail(self) -> mmap.mmap:
        if self._mm is None:
            raise ValueError(f"journal {self.path} is closed")
        return self._mm

    @property
    def _data_size(self) -> int:
        return len(self._map_or_fail()) - HEADER_SIZE

    def _grow(self, needed: int) -> None:
        """Makes the file hold physical positions below needed."""
        size = self._data_size
        if needed <= size:
            return
        new = min(self.capacity, max(needed, 2 * size))
        os.ftruncate(self._fd, HEADER_SIZE + new)
        self._map()

    def _recover(self) -> None:
        if os.fstat(self._fd).st_size < HEADER_SIZE:
            raise JournalError(f"{self.path} is not a trialplane journal (too short)")
        self._map()
        mm = self._map_or_fail()
        magic, version, header_size, capacity, trial_id, run_id, journal_id, created, address_len = IDENTITY.unpack_from(mm, 0)
        (crc,) = struct.unpack_from("<I", mm, IDENTITY_CRC_AT)
        if magic != MAGIC:
            raise JournalError(f"{self.path} is not a trialplane journal")
        if zlib.crc32(mm[0:IDENTITY_CRC_AT]) != crc or version != VERSION or header_size != HEADER_SIZE:
            raise JournalError(f"{self.path}: the journal's header is damaged or of another version")
        self.capacity, self.trial_id, self.trial_run_id = capacity, trial_id, run_id
        self.journal_id, self.created_us = journal_id, created
        self.address = bytes(mm[ADDRESS_AT: ADDRESS_AT + min(address_len, ADDRESS_MAX)]).decode(errors="replace")
        self._soft_size = self._pick_soft_size()
        best = None
        for at in STATE_SLOTS:
            fields = STATE.unpack_from(mm, at)
            reason_len = fields[8]
            (slot_crc,) = struct.unpack_from("<I", mm, at + STATE_CRC_AT)
            if reason_len <= REASON_MAX and zlib.crc32(mm[at: at + STATE_CRC_AT]) == slot_crc:
                if best is None or fields[0] > best[0][0]:
                    best = (fields, bytes(mm[at + STATE.size: at + STATE.size + reason_len]))
        if best is None:
            raise JournalError(f"{self.path}: both state slots of the journal are damaged")
        (self._sequence, self.acknowledged, start, self.dropped_points, in_flight_begin, in_flight_end, self.epoch,
         self.final_state, _), reason = best
        self.final_reason = reason.decode(errors="replace")
        self._scan(start)
        if in_flight_begin == start and in_flight_end > start and self.recovery.cut_at is None:
            self.resend = (in_flight_begin, in_flight_end)

    def _scan(self, start: int) -> None:
        """Follows the records from start; the first that does not check out
        ends them (a torn record is cut there)."""
        mm = self._map_or_fail()
        cap, data_size = self.capacity, self._data_size
        offset = start
        current = _Extent(offset, offset, offset % cap)
        extents = []
        records = points = 0
        cut_at = None
        while True:
            p = offset % cap
            if p + RECORD_SIZE > min(cap, data_size):
                break
            at = HEADER_SIZE + p
            crc, length, stored_offset, kind, count, blob_len, step, _ = RECORD.unpack_from(mm, at)
            if stored_offset != offset:
                break
            body_end = RECORD_SIZE + 8 * count + blob_len
            if (length < RECORD_SIZE or length % 8 or body_end > length or p + length > min(cap, data_size)
                    or zlib.crc32(mm[at + 4: at + body_end]) != crc or (kind == PAD and step <= offset)
                    or kind not in (POINTS, PAD, CHECKPOINT)):
                cut_at = offset
                mm[at: at + RECORD_SIZE] = bytes(RECORD_SIZE)
                break
            if kind == PAD:
                current.lend = offset + length
                extents.append(current)
                offset = step
                current = _Extent(offset, offset, offset % cap)
                continue
            records += 1
            points += count if kind == POINTS else 0
            offset += length
            current.lend = offset
        extents.append(current)
        self._extents = extents
        self._tail = offset
        self._read_cursor = start
        self.pending_records, self.pending_points = records, points
        self.recovery = RecoveryReport(records, points, cut_at)
        if cut_at is not None:
            # What follows the cut is new history: request ids of this
            # journal's batches change with the epoch.
            self.epoch += 1
            self._write_state()

    def close(self, *, delete_if_settled: bool = True) -> bool:
        """Writes the header out and closes the file; deletes it when nothing
        in it is still to be sent and no final state waits (and
        delete_if_settled). Returns whether it was deleted."""
        with self._lock:
            if self._mm is None:
                return False
            self._write_state()
            self._mm.flush()
            self._mm.close()
            self._mm = None
            deleted = False
            if delete_if_settled and self.pending_records == 0 and not self.final_state:
                # Unlinked while still locked, so no other process adopts it meanwhile.
                self.path.unlink(missing_ok=True)
                deleted = True
            else:
                os.fsync(self._fd)
            os.close(self._fd)
            return deleted

    def release(self) -> None:
        """Closes the file as a killed process would leave it (no header
        update, no delete): for tests."""
        with self._lock:
            if self._mm is not None:
                self._mm.close()
                self._mm = None
                os.close(self._fd)

    @property
    def closed(self) -> bool:
        return self._mm is None

    # --- header state

    def _write_state(self) -> None:
        mm = self._map_or_fail()
        self._sequence += 1
        reason = self.final_reason.encode()[:REASON_MAX]
        slot = bytearray(STATE_CRC_AT)
        STATE.pack_into(slot, 0, self._sequence, self.acknowledged, self._extents[0].lstart, self.dropped_points,
                        *self._in_flight, self.epoch, self.final_state, len(reason))
        slot[STATE.size: STATE.size + len(reason)] = reason
        at = STATE_SLOTS[self._sequence % 2]
        mm[at: at + STATE_CRC_AT] = bytes(slot)
        struct.pack_into("<I", mm, at + STATE_CRC_AT, zlib.crc32(slot))
        self._dirty_since_sync = True

    def set_final_state(self, state: int, reason: str = "") -> None:
        """Records the trial state the process ended with, for whoever sends
        the rest of the journal to report once it is sent (0 clears it)."""
        with self._lock:
            self.final_state, self.final_reason = state, reason if state else ""
            self._write_state()

    def sync_to_disk(self, force: bool = False) -> None:
        """fsyncs what was written, at most about once a second unless force."""
        now = time.monotonic()
        if self._mm is None or not (force or (self._dirty_since_sync and now - self._last_sync >= FSYNC_INTERVAL)):
            return
        self._dirty_since_sync = False
        self._last_sync = now
        os.fsync(self._fd)

    # --- appending

    def append_points(self, step: int, time_us: int, blob: bytes, values) -> None:
        """Appends one report: values (floats, one per name in blob) at step."""
        count = len(values)
        packed = _values_struct(count).pack(*values)
        self._append(POINTS, count, step, time_us, packed, blob)

    def append_checkpoint(self, steps_completed: int, payload: bytes) -> None:
        self._append(CHECKPOINT, 0, steps_completed, time.time_ns() // 1000, b"", payload)

    def _append(self, kind: int, count: int, step: int, time_us: int, values: bytes, blob: bytes) -> None:
        body_len = RECORD_SIZE + len(values) + len(blob)
        length = _align(body_len)
        with self._lock:
            p = self._reserve(length)
            mm = self._map_or_fail()
            offset = self._tail
            body = RECORD_BODY.pack(length, offset, kind, count, len(blob), step, time_us) + values + blob
            record = struct.pack("<I", zlib.crc32(body)) + body + _ZEROS[: length - body_len]
            at = HEADER_SIZE + p
            mm[at: at + length] = record
            self._tail = offset + length
            self._extents[-1].lend = self._tail
            self.pending_records += 1
            self.pending_points += count

    def _reserve(self, length: int) -> int:
        """The physical position where a record of length bytes goes, with
        room for a PAD after it. Moves the writer (writing a PAD) when the
        ring ends or a region ahead is still in use, and drops the oldest
        records when no free region is left."""
        cap = self.capacity
        need = length + RECORD_SIZE
        if need > cap // 2:
            raise ValueError(f"a record of {length} bytes does not fit a journal of {cap} bytes")
        dropped = False
        while True:
            target = self._find_room(need)
            if target is not None:
                break
            self._drop_oldest()
            dropped = True
        if dropped:
            self._write_state()
        p = target % cap
        self._grow(p + need)
        if target != self._tail:
            self._jump(target)
        return p

    def _find_room(self, need: int) -> int | None:
        """The logical offset of the first free region of need bytes at or
        after the tail, in ring order, before the writer would come round to
        its own records again; None when there is none. Prefers the start of
        the ring once past soft_size while little is unsent, so the file
        stays small."""
        cap = self.capacity
        tail = self._tail
        w = tail % cap
        current = self._extents[-1]
        if current.size:
            own_start, own_end = current.pstart, w
        else:
            own_start = own_end = w
        others = sorted((e.pstart, e.pstart + e.size) for e in self._extents[:-1] if e.size)
        if w + need <= cap and not any(s < w + need and w < t for s, t in others):
            if not (w >= self._soft_size and self._occupied() <= self._soft_size // 2):
                return tail
            if not any(s < need and 0 < t for s, t in [*others, (own_start, own_end + RECORD_SIZE)]):
                return (tail // cap + 1) * cap
            return tail
        # Moving away means a PAD at the tail.
        busy = sorted([*others, (own_start, own_end + RECORD_SIZE)])
        lap = tail // cap
        for low, high, base in ((own_end + RECORD_SIZE, cap, lap * cap), (0, own_start, (lap + 1) * cap)):
            position = low
            for s, t in busy:
                if t <= position or s >= high:
                    continue
                if s - position >= need:
                    return base + position
                position = max(position, t)
            if min(high, cap) - position >= need:
                return base + position
        return None

    def _occupied(self) -> int:
        return sum(e.size for e in self._extents)

    def _jump(self, target: int) -> None:
        """Writes a PAD at the tail that sends readers to target."""
        mm = self._map_or_fail()
        offset = self._tail
        body = RECORD_BODY.pack(RECORD_SIZE, offset, PAD, 0, 0, target, 0)
        at = HEADER_SIZE + offset % self.capacity
        mm[at: at + RECORD_SIZE] = struct.pack("<I", zlib.crc32(body)) + body
        self._extents[-1].lend = offset + RECORD_SIZE
        self._extents.append(_Extent(target, target, target % self.capacity))
        self._tail = target

    def _drop_oldest(self) -> None:
        """Drops the oldest record still kept (or the PAD ending the oldest extent)."""
        oldest = self._extents[0]
        if oldest.size == 0:
            if len(self._extents) == 1:
                raise AssertionError("journal full with nothing to drop")
            self._extents.pop(0)
            return
        mm = self._map_or_fail()
        _, length, _, kind, count, _, _, _ = RECORD.unpack_from(mm, HEADER_SIZE + oldest.pstart)
        if kind == PAD:
            self._extents.pop(0)
            return
        if oldest.lstart >= self._read_cursor:
            # Not taken by the sender yet: lost. A record the sender holds is
            # still sent, and acknowledged as usual.
            self.pending_records -= 1
            self.pending_points -= count if kind == POINTS else 0
            self.dropped_records += 1
            self.dropped_points += count if kind == POINTS else 0
        oldest.lstart += length
        oldest.pstart += length
        if oldest.size == 0 and len(self._extents) > 1:
            self._extents.pop(0)

    # --- reading and acknowledging (the sender)

    @property
    def tail(self) -> int:
        return self._tail

    @property
    def first_needed(self) -> int:
        return self._extents[0].lstart

    def read(self, max_bytes: int) -> tuple[int, bytes] | None:
        """A copy of the records not yet taken, from the first one on: at
        least one whole record, else at most about max_bytes. None when there
        is nothing new. Call taken() with what was used."""
        with self._lock:
            return self._copy(max(self._read_cursor, self._extents[0].lstart), max_bytes)

    def _copy(self, begin: int, max_bytes: int) -> tuple[int, bytes] | None:
        mm = self._map_or_fail()
        if begin >= self._tail:
            return None
        first = next(e for e in self._extents if e.lend > begin)
        (first_length,) = struct.unpack_from("<I", mm, HEADER_SIZE + first.pstart + (begin - first.lstart) + 4)
        limit = begin + max(max_bytes, first_length)
        chunks = []
        for extent in self._extents:
            if extent.lend <= begin or extent.lstart >= limit:
                continue
            s = max(begin, extent.lstart)
            t = min(limit, extent.lend)
            at = HEADER_SIZE + extent.pstart + (s - extent.lstart)
            chunks.append(mm[at: at + (t - s)])
            if t >= limit:
                break
        return begin, b"".join(chunks)

    def taken(self, end: int) -> int:
        """Marks everything before end as taken by the sender. Returns the
        first offset still kept: records before it were dropped while the
        sender copied them and are not to be sent."""
        with self._lock:
            self._read_cursor = max(self._read_cursor, end)
            return self._extents[0].lstart

    def untake(self, begin: int) -> None:
        """Gives back the records from begin on: the batch cut from them was
        refused without being applied (too large for the server), so they
        are cut again, into other ranges."""
        with self._lock:
            self._read_cursor = min(self._read_cursor, max(begin, self._extents[0].lstart))
            if self.resend is not None and self.resend[0] == begin:
                self.resend = None
            if self._in_flight[0] == begin and self._mm is not None:
                self._in_flight = (0, 0)
                self._write_state()

    def set_in_flight(self, begin: int, end: int) -> None:
        """Records the range of the batch about to be sent."""
        with self._lock:
            if self._mm is not None:
                self._in_flight = (begin, end)
                self._write_state()

    def acknowledge(self, end: int, records: int, points: int) -> None:
        """The records before end (records of them, holding points) are
        settled: stored, or refused for good."""
        with self._lock:
            if self._mm is None:
                return
            self.acknowledged = max(self.acknowledged, end)
            if self._in_flight[1] <= end:
                self._in_flight = (0, 0)
            if self.resend is not None and self.resend[1] <= end:
                self.resend = None
            extents = self._extents
            while len(extents) > 1 and extents[0].lend <= end:
                extents.pop(0)
            first = extents[0]
            if first.lstart < end:
                moved = min(end, first.lend) - first.lstart
                first.lstart += moved
                first.pstart += moved
            self.pending_records -= records
            self.pending_points -= points
            self._write_state()

    # --- for tests and tools

    def records(self) -> Iterator[Record]:
        """Every record still kept, oldest first (for tests and tools)."""
        offset = self.first_needed
        while True:
            with self._lock:
                got = self._copy(max(offset, self._extents[0].lstart), 1 << 20)
            if got is None:
                return
            begin, chunk = got
            records, end = parse_records(chunk, begin, 1 << 30)
            if end == begin:
                return
            yield from records
            offset = end

    def physical_size(self) -> int:
        """Bytes of ring the file holds now (it grows as far as the writer went)."""
        with self._lock:
            return self._data_size

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r}, trial {self.trial_id}, run {self.trial_run_id})"
