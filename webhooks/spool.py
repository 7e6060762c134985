"""The local spool: records accepted while the broker is unreachable, fsync'd before the 202, drained in order.

Layout of `spool_dir` (one directory per web process; a lock file refuses a second process):
- `seg-<20 digits>.log`: append-only segments of frames `magic(4) length(4) crc32(4) body`; one frame holds
  every record of one request (all or nothing), so a torn tail is a request that was never answered 2xx.
- `cursor`: `<segment> <offset>` of the first frame not yet acknowledged by the broker (written atomically).
Every append is written and fsync'd (file, and the directory when a segment is created) before it returns.
Not thread-safe: the caller serializes every call (webhooks/durable.py holds one lock around them).
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from webhooks import WebhooksError
from webhooks.publisher import OutRecord

log = logging.getLogger(__name__)

MAGIC = b"AWS1"
HEADER = struct.Struct(">4sII")
_LEN = struct.Struct(">I")


class SpoolError(WebhooksError):
    """The spool cannot be used (its directory, its lock, or a write failed)."""


class SpoolFullError(SpoolError):
    """The spool has no room for the records (or is disabled)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One spooled frame (the records of one request) and where it ends on disk."""

    segment: int
    end: int
    records: list[OutRecord]


def encode_records(records: list[OutRecord]) -> bytes:
    parts = [_LEN.pack(len(records))]
    for record in records:
        for field in (record.topic.encode(), record.key, record.value):
            parts += [_LEN.pack(len(field)), field]
    return b"".join(parts)


def decode_records(body: bytes) -> list[OutRecord]:
    (count,), position, records = _LEN.unpack_from(body), _LEN.size, []
    for _ in range(count):
        fields = []
        for _ in range(3):
            (size,) = _LEN.unpack_from(body, position)
            position += _LEN.size
            fields.append(body[position : position + size])
            position += size
        records.append(OutRecord(fields[0].decode(), fields[1], fields[2]))
    return records


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Append-only, checksummed, bounded by `max_bytes` on disk (0 disables it)."""

    def __init__(self, directory: Path, max_bytes: int, *, segment_bytes: int | None = None) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or max(64 * 1024, min(8 * 1024 * 1024, max_bytes // 4))
        self.records = 0  # records not yet acknowledged by the broker
        self.entries = 0
        self.disk_bytes = 0  # bytes of every segment file on disk
        self._segments: dict[int, int] = {}  # segment number -> size
        self._cursor = (0, 0)
        self._active_fd: int | None = None
        self._lock_fd: int | None = None

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    @property
    def empty(self) -> bool:
        return self.entries == 0

    def _path(self, segment: int) -> Path:
        return self.directory / f"seg-{segment:020d}.log"

    # -- opening and recovery -------------------------------------------------------------------------------

    def open(self) -> None:
        """Take the directory's lock, recover what a previous process left, and open the active segment."""
        if not self.enabled:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise SpoolError(
                f"the spool directory {self.directory} is in use by another web process; give every process its own "
                "AIWORKER_SPOOL_DIR"
            ) from exc
        except OSError as exc:
            raise SpoolError(f"cannot use the spool directory {self.directory}: {exc}; check AIWORKER_SPOOL_DIR") from exc
        self._recover()

    def _recover(self) -> None:
        self.entries = self.records = 0  # counted again from the files (also when this spool is opened again)
        self._segments = {}
        segments = sorted(int(p.name[4:-4]) for p in self.directory.glob("seg-*.log") if p.name[4:-4].isdigit())
        cursor = self._read_cursor()
        if cursor is None or (segments and cursor[0] < segments[0]):
            cursor = (segments[0], 0) if segments else (1, 0)
        for number in segments:
            path = self._path(number)
            if number < cursor[0]:
                path.unlink()  # fully drained before the last stop
                continue
            start = cursor[1] if number == cursor[0] else 0
            good_end, entries, records = self._scan(path, start)
            size = path.stat().st_size
            if good_end < size:
                log.warning(
                    "spool segment %s: %d bytes after offset %d are torn or corrupt; cut", path, size - good_end, good_end
                )
                with open(path, "r+b") as handle:
                    handle.truncate(good_end)
                    os.fsync(handle.fileno())
                size = good_end
            self._segments[number] = size
            self.entries += entries
            self.records += records
        self._cursor = cursor
        if not self._segments:
            self._segments[cursor[0]] = 0
        self.disk_bytes = sum(self._segments.values())
        self._open_active(max(self._segments))
        if self.entries:
            log.warning("spool %s: %d records from a previous run wait for the broker", self.directory, self.records)

    def _read_cursor(self) -> tuple[int, int] | None:
        try:
            segment, offset = (self.directory / "cursor").read_text().split()
            return int(segment), int(offset)
        except (OSError, ValueError):
            return None

    def _scan(self, path: Path, start: int) -> tuple[int, int, int]:
        """(end of the last whole frame, frames, records) of a segment from `start`."""
        entries = records = 0
        with open(path, "rb") as handle:
            handle.seek(start)
            position = start
            for body, end in self._frames(handle, position):
                entries += 1
                records += _LEN.unpack_from(body)[0]
                position = end
        return position, entries, records

    @staticmethod
    def _frames(handle: BinaryIO, position: int, limit: int | None = None) -> list[tuple[bytes, int]]:
        frames: list[tuple[bytes, int]] = []
        read = handle.read
        total = 0
        while limit is None or total < limit:
            header = read(HEADER.size)
            if len(header) < HEADER.size:
                break
            magic, length, crc = HEADER.unpack(header)
            if magic != MAGIC:
                break
            body = read(length)
            if len(body) < length or zlib.crc32(body) != crc:
                break
            position += HEADER.size + length
            total += HEADER.size + length
            frames.append((body, position))
        return frames

    def _open_active(self, number: int) -> None:
        if self._active_fd is not None:
            os.close(self._active_fd)
        created = not self._path(number).exists()
        self._active_fd = os.open(self._path(number), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._active = number
        self._segments.setdefault(number, 0)
        if created:
            _fsync_dir(self.directory)

    def close(self) -> None:
        for fd in (self._active_fd, self._lock_fd):
            if fd is not None:
                os.close(fd)
        self._active_fd = self._lock_fd = None

    # -- appending ------------------------------------------------------------------------------------------

    def append(self, records: list[OutRecord]) -> None:
        """Write the records of one request as one frame and fsync it, or raise SpoolFullError / SpoolError."""
        if not self.enabled or self._active_fd is None:
            raise SpoolFullError("the spool is disabled (AIWORKER_SPOOL_MAX_BYTES=0)")
        body = encode_records(records)
        frame = HEADER.pack(MAGIC, len(body), zlib.crc32(body)) + body
        if self.disk_bytes + len(frame) > self.max_bytes:
            raise SpoolFullError(
                f"the spool is full ({self.disk_bytes} of {self.max_bytes} bytes, AIWORKER_SPOOL_MAX_BYTES) while the "
                "broker is unreachable"
            )
        if self._segments[self._active] >= self.segment_bytes:
            self._open_active(self._active + 1)
        try:
            os.write(self._active_fd, frame)
            os.fsync(self._active_fd)
        except OSError as exc:
            raise SpoolError(f"writing the spool {self.directory} failed: {exc}") from exc
        self._segments[self._active] += len(frame)
        self.disk_bytes += len(frame)
        self.entries += 1
        self.records += len(records)

    # -- draining -------------------------------------------------------------------------------------------

    def read(self, max_bytes: int = 1024 * 1024) -> list[Entry]:
        """The oldest frames not yet acknowledged (about `max_bytes` of them, at least one), in order."""
        segment, offset = self._cursor
        while segment < self._active and offset >= self._segments.get(segment, 0):
            segment, offset = segment + 1, 0
        if segment not in self._segments:
            return []
        with open(self._path(segment), "rb") as handle:
            handle.seek(offset)
            frames = self._frames(handle, offset, max_bytes)
        return [Entry(segment, end, decode_records(body)) for body, end in frames]

    def commit(self, entries: list[Entry]) -> None:
        """The broker acknowledged `entries` (the start of what `read` returned): move the cursor past them."""
        if not entries:
            return
        last = entries[-1]
        self._cursor = (last.segment, last.end)
        self.entries -= len(entries)
        self.records -= sum(len(e.records) for e in entries)
        if self.entries == 0:
            self._open_active(self._active + 1)  # start afresh; every older segment is drained
            self._cursor = (self._active, 0)
        self._write_cursor()
        for number in [n for n in self._segments if n < self._cursor[0]]:
            self._path(number).unlink(missing_ok=True)
            self.disk_bytes -= self._segments.pop(number)
        _fsync_dir(self.directory)

    def _write_cursor(self) -> None:
        temporary = self.directory / "cursor.tmp"
        with open(temporary, "w") as handle:
            handle.write(f"{self._cursor[0]} {self._cursor[1]}\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.directory / "cursor")
