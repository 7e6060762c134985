"""The local spool: records accepted while the broker is unreachable, fsync'd before the 202, drained in order.

Layout of `spool_dir` (one directory per web process; a lock file refuses a second process):
- `seg-<20 digits>.log`: append-only segments of frames `magic(4) length(4) crc32(4) body`; one frame holds
  every record of one request (all or nothing), so a torn tail is a request that was never answered 2xx.
- `cursor`: `<segment> <offset> <crc32>` of the first frame not yet acknowledged by the broker, overwritten in
  place at a fixed width (so that a full disk never stops the drain that frees it: no new block is needed); a
  torn or unreadable cursor falls back to the start of the oldest segment (records sent twice, none lost).
Every append is written and fsync'd (file, and the directory when a segment is created) before it returns.

A full disk: a short or failed write is cut back to where the frame began and raises SpoolError (the request
gets 503, never 202); the next append tries again, so the spool works again once there is room. A failed fsync
fails closed: after it the kernel may have dropped the dirty pages and a second fsync may lie, so every later
append is refused (SpoolError naming the first failure) until the process restarts and recovery re-reads and
checks the files. The frames fsync'd before the failure still drain.
Not thread-safe: the caller serializes every call (webhooks/durable.py holds one lock around them).
"""

from __future__ import annotations

import fcntl
import logging
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from webhooks import WebhooksError
from webhooks.publisher import OutRecord
from webhooks.spool_io import HEADER, LENGTH, MAGIC, decode_records, encode_records, fsync_dir, read_frames, write_all

log = logging.getLogger(__name__)

CURSOR_WIDTH = 64  # bytes of the cursor file, always: one sector, overwritten in place


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


class Spool:
    """Append-only, checksummed, bounded by `max_bytes` on disk (0 disables it)."""

    def __init__(
        self, directory: Path, max_bytes: int, *, segment_bytes: int | None = None, fsync: Callable[[int], None] = os.fsync
    ) -> None:
        self.directory = Path(directory)
        self._fsync = fsync  # os.fsync; a test passes one that fails, as a dying disk does
        self.broken = ""  # why the spool failed closed (a failed fsync), until the process restarts
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or max(64 * 1024, min(8 * 1024 * 1024, max_bytes // 4))
        self.records = 0  # records not yet acknowledged by the broker
        self.entries = 0
        self.disk_bytes = 0  # bytes of every segment file on disk
        self._segments: dict[int, int] = {}  # segment number -> size
        self._cursor = (0, 0)
        self._active_fd: int | None = None
        self._lock_fd: int | None = None
        self._cursor_fd: int | None = None

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
        try:
            self._recover()
        except OSError as exc:
            raise SpoolError(f"cannot use the spool directory {self.directory}: {exc}; check AIWORKER_SPOOL_DIR") from exc

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
        self._open_cursor()
        self._open_active(max(self._segments))
        if self.entries:
            log.warning("spool %s: %d records from a previous run wait for the broker", self.directory, self.records)

    def _read_cursor(self) -> tuple[int, int] | None:
        try:
            fields = (self.directory / "cursor").read_text().split()
            segment, offset, crc = fields if len(fields) == 3 else (*fields, "")
            if crc and int(crc, 16) != zlib.crc32(f"{segment} {offset}".encode()):
                raise ValueError("checksum")
            return int(segment), int(offset)
        except (OSError, ValueError):
            return None  # torn, missing or corrupt: from the start of the oldest segment (sent twice, never lost)

    def _open_cursor(self) -> None:
        if self._cursor_fd is None:
            self._cursor_fd = os.open(self.directory / "cursor", os.O_RDWR | os.O_CREAT, 0o600)
        self._write_cursor()  # allocates its block now, while there is room, and drops an old variable-width one
        os.ftruncate(self._cursor_fd, CURSOR_WIDTH)

    def _scan(self, path: Path, start: int) -> tuple[int, int, int]:
        """(end of the last whole frame, frames, records) of a segment from `start`."""
        entries = records = 0
        with open(path, "rb") as handle:
            handle.seek(start)
            position = start
            for body, end in read_frames(handle, position):
                entries += 1
                records += LENGTH.unpack_from(body)[0]
                position = end
        return position, entries, records

    def _open_active(self, number: int) -> None:
        if self._active_fd is not None:
            os.close(self._active_fd)
        created = not self._path(number).exists()
        self._active_fd = os.open(self._path(number), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._active = number
        self._segments.setdefault(number, 0)
        if created:
            fsync_dir(self.directory)

    def close(self) -> None:
        for fd in (self._active_fd, self._cursor_fd, self._lock_fd):
            if fd is not None:
                os.close(fd)
        self._active_fd = self._cursor_fd = self._lock_fd = None

    # -- appending ------------------------------------------------------------------------------------------

    def append(self, records: list[OutRecord]) -> None:
        """Write the records of one request as one frame and fsync it, or raise SpoolFullError / SpoolError."""
        if not self.enabled or self._active_fd is None:
            raise SpoolFullError("the spool is disabled (AIWORKER_SPOOL_MAX_BYTES=0)")
        if self.broken:
            raise SpoolError(self.broken)
        body = encode_records(records)
        frame = HEADER.pack(MAGIC, len(body), zlib.crc32(body)) + body
        if self.disk_bytes + len(frame) > self.max_bytes:
            raise SpoolFullError(
                f"the spool is full ({self.disk_bytes} of {self.max_bytes} bytes, AIWORKER_SPOOL_MAX_BYTES) while the "
                "broker is unreachable"
            )
        try:
            if self._segments[self._active] >= self.segment_bytes:
                self._open_active(self._active + 1)
        except OSError as exc:
            raise SpoolError(f"writing the spool {self.directory} failed (a new segment: {exc}); free space there") from exc
        assert self._active_fd is not None
        start = self._segments[self._active]
        try:
            write_all(self._active_fd, frame)
        except OSError as exc:
            self._cut(start)
            raise SpoolError(
                f"writing the spool {self.directory} failed ({exc.strerror or exc}); the request was not accepted: "
                "free space there (the spool takes records again at once)"
            ) from exc
        try:
            self._fsync(self._active_fd)
        except OSError as exc:
            self.broken = (
                f"the spool {self.directory} failed closed: fsync failed ({exc.strerror or exc}), so what it wrote may "
                "not be on disk; check the disk, then restart the web process (it re-reads and checks the spool)"
            )
            log.error("%s", self.broken)
            self._cut(start)
            raise SpoolError(self.broken) from exc
        self._segments[self._active] += len(frame)
        self.disk_bytes += len(frame)
        self.entries += 1
        self.records += len(records)

    def _cut(self, size: int) -> None:
        """Truncate the active segment back to `size` (a frame that was not written whole, or not synced)."""
        assert self._active_fd is not None
        try:
            os.ftruncate(self._active_fd, size)
        except OSError as exc:  # what is left is a torn frame: its checksum keeps recovery and the drain from it
            self.broken = self.broken or (
                f"the spool {self.directory} failed closed: a failed write could not be cut back ({exc}); restart the "
                "web process once the disk is healthy"
            )
            log.error("%s", self.broken)

    # -- draining -------------------------------------------------------------------------------------------

    def read(self, max_bytes: int = 1024 * 1024) -> list[Entry]:
        """The oldest frames not yet acknowledged (about `max_bytes` of them, at least one), in order."""
        segment, offset = self._cursor
        while segment < self._active and offset >= self._segments.get(segment, 0):
            segment, offset = segment + 1, 0
        if segment not in self._segments:
            return []
        try:
            with open(self._path(segment), "rb") as handle:
                handle.seek(offset)
                frames = read_frames(handle, offset, max_bytes)
        except OSError as exc:
            raise SpoolError(f"reading the spool {self.directory} failed: {exc}") from exc
        return [Entry(segment, end, decode_records(body)) for body, end in frames]

    def commit(self, entries: list[Entry]) -> None:
        """The broker acknowledged `entries` (the start of what `read` returned): move the cursor past them."""
        if not entries:
            return
        last = entries[-1]
        self._cursor = (last.segment, last.end)
        self.entries -= len(entries)
        self.records -= sum(len(e.records) for e in entries)
        try:
            if self.entries == 0:
                self._open_active(self._active + 1)  # start afresh; every older segment is drained
                self._cursor = (self._active, 0)
            self._write_cursor()
            for number in [n for n in self._segments if n < self._cursor[0]]:
                self._path(number).unlink(missing_ok=True)
                self.disk_bytes -= self._segments.pop(number)
            fsync_dir(self.directory)
        except OSError as exc:  # the records were acknowledged: at worst they are sent again after a restart
            raise SpoolError(f"moving the spool's cursor in {self.directory} failed: {exc}") from exc

    def _write_cursor(self) -> None:
        assert self._cursor_fd is not None
        text = f"{self._cursor[0]} {self._cursor[1]}"
        line = f"{text} {zlib.crc32(text.encode()):08x}".ljust(CURSOR_WIDTH - 1) + "\n"
        os.pwrite(self._cursor_fd, line.encode(), 0)
        self._fsync(self._cursor_fd)
