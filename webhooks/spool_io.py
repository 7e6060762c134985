"""The spool's file format and its OS calls (webhooks/spool.py): frames `magic(4) length(4) crc32(4) body`, a
body holding the records of one request."""

from __future__ import annotations

import errno
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

from webhooks.publisher import OutRecord

MAGIC = b"AWS1"
HEADER = struct.Struct(">4sII")
LENGTH = struct.Struct(">I")


def encode_records(records: list[OutRecord]) -> bytes:
    parts = [LENGTH.pack(len(records))]
    for record in records:
        for field in (record.topic.encode(), record.key, record.value):
            parts += [LENGTH.pack(len(field)), field]
    return b"".join(parts)


def decode_records(body: bytes) -> list[OutRecord]:
    (count,), position, records = LENGTH.unpack_from(body), LENGTH.size, []
    for _ in range(count):
        fields = []
        for _ in range(3):
            (size,) = LENGTH.unpack_from(body, position)
            position += LENGTH.size
            fields.append(body[position : position + size])
            position += size
        records.append(OutRecord(fields[0].decode(), fields[1], fields[2]))
    return records


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_frames(handle: BinaryIO, position: int, limit: int | None = None) -> list[tuple[bytes, int]]:
    """(body, end offset) of the whole, checksummed frames from `position` (about `limit` bytes of them)."""
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


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written; a write that makes no progress (a full disk) raises OSError."""
    view, written = memoryview(data), 0
    while written < len(data):
        count = os.write(fd, view[written:])
        if count <= 0:
            raise OSError(errno.ENOSPC, "no space left on device (short write)")
        written += count
