"""Spooled records the broker refuses for good (too large, invalid): a dlq record instead of a blocked spool.

The original never reached the broker, so the dlq record cannot point at a source position (partition and
offset are -1, `source.spool` is true). It carries the original value when it is at most DLQ_VALUE_BYTES, else
its first DLQ_VALUE_BYTES (`truncated`, `value_size`, `value_sha256`), and the whole record is kept on the web
pod's volume, `<AIWORKER_SPOOL_DIR>/dead/<sha256>.rec` (named in `kept`), for the operator to re-send by hand.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import uuid
from pathlib import Path

from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    UnknownError,
)

from webhooks.publisher import OutRecord
from webhooks.spool_io import encode_records, fsync_dir, write_all

log = logging.getLogger(__name__)
DLQ_NAMESPACE = uuid.UUID("5c0e7d1a-2b3f-4e6a-9c8d-1f2e3a4b5c6d")
DLQ_VALUE_BYTES = 64 * 1024
DLQ_KEY_CHARS = 255
REFUSED_FOR_GOOD = (
    MessageSizeTooLargeError, RecordListTooLargeError, CorruptRecordException, InvalidTopicError, InvalidTimestampError,
)  # fmt: skip
UNNAMED_STRIKES = 3
"""aiokafka reports the broker's INVALID_RECORD (87) as UnknownError, as it does UNKNOWN_SERVER_ERROR (-1), which
may pass: a record refused so this many drain rounds in a row is taken as refused for good."""


def refused_for_good(exc: BaseException, strikes: int = UNNAMED_STRIKES) -> bool:
    """Whether the broker (or the producer, before sending) will refuse this record whatever the retry."""
    if isinstance(exc, REFUSED_FOR_GOOD):
        return True
    return unnamed(exc) and strikes >= UNNAMED_STRIKES


def unnamed(exc: BaseException) -> bool:
    """A refusal aiokafka has no class for (see UNNAMED_STRIKES)."""
    return isinstance(exc, UnknownError)


def reason_of(exc: BaseException) -> str:
    name = type(exc).__name__
    detail = str(exc) if isinstance(exc, KafkaError) else repr(exc)
    return f"the broker refused the spooled record for good ({name}: {detail})"


def keep(directory: Path, record: OutRecord) -> Path | None:
    """Write the whole record to `directory/dead/<sha256>.rec` (fsync'd); None when the disk does not take it."""
    digest = hashlib.sha256(record.value).hexdigest()
    folder = directory / "dead"
    path = folder / f"{digest}.rec"
    try:
        folder.mkdir(exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            write_all(fd, encode_records([record]))
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(folder)
    except OSError as exc:
        log.error("could not keep the refused record %s on disk (%s); the dlq has its first %d bytes", path, exc,
                  DLQ_VALUE_BYTES)  # fmt: skip
        return None
    return path


def dlq_record(record: OutRecord, reason: str, dlq_topic: str, kept: Path | None) -> OutRecord:
    """The dlq record of a spooled record the broker refused for good (see the module docstring)."""
    digest = hashlib.sha256(record.value).hexdigest()
    value = record.value[:DLQ_VALUE_BYTES]
    try:
        text: str | None = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        cut = len(value) < len(record.value) and exc.start >= len(value) - 3
        text = value[: exc.start].decode("utf-8") if cut else None
    key = record.key.decode("utf-8", "replace")
    body: dict[str, object] = {
        "id": str(uuid.uuid5(DLQ_NAMESPACE, f"{record.topic}|{digest}|{key}")),
        "reason": reason,
        "source": {"topic": record.topic, "partition": -1, "offset": -1, "spool": True},
        "key": key[:DLQ_KEY_CHARS],
        "value": text,
        "value_base64": None if text is not None else base64.b64encode(value).decode(),
        "kept": str(kept) if kept is not None else None,
    }
    if len(value) < len(record.value) or len(key) > DLQ_KEY_CHARS:
        body |= {"truncated": True, "value_size": len(record.value), "value_sha256": digest, "key_size": len(record.key)}
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return OutRecord(dlq_topic, record.key[: DLQ_KEY_CHARS * 4], data)
