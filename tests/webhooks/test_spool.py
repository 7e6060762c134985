"""The spool on a real directory: order, recovery after a restart, torn tails, its bound and its lock."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from webhooks.publisher import OutRecord
from webhooks.spool import Spool, SpoolError, SpoolFullError


def records(n: int, size: int = 10) -> list[OutRecord]:
    return [OutRecord("t.gitea.webhooks", f"key-{n}".encode(), bytes([n % 256]) * size + f"#{n}.{i}".encode()) for i in range(2)]


def drain(spool: Spool) -> list[OutRecord]:
    out: list[OutRecord] = []
    while entries := spool.read(300):
        out += [r for e in entries for r in e.records]
        spool.commit(entries)
    return out


def test_appends_come_back_in_order_across_segments_and_the_disk_is_freed(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10 * 1024 * 1024, segment_bytes=500)
    spool.open()
    sent = [r for n in range(40) for r in records(n)]
    for n in range(40):
        spool.append(records(n))
    assert spool.records == 80 and spool.entries == 40 and not spool.empty
    assert len(list(tmp_path.glob("seg-*.log"))) > 3
    assert drain(spool) == sent
    assert spool.empty and spool.disk_bytes == 0
    assert [p.stat().st_size for p in tmp_path.glob("seg-*.log")] == [0]
    spool.close()


def test_a_restart_resumes_after_what_was_acknowledged(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1024 * 1024, segment_bytes=400)
    spool.open()
    for n in range(20):
        spool.append(records(n))
    first = spool.read(200)
    spool.commit(first)
    acknowledged = sum(len(e.records) for e in first)
    spool.close()  # a crash after the commit: the rest must come back, in order
    again = Spool(tmp_path, 1024 * 1024, segment_bytes=400)
    again.open()
    assert again.records == 40 - acknowledged
    assert drain(again) == [r for n in range(20) for r in records(n)][acknowledged:]
    again.close()


def test_the_same_spool_opened_again_counts_what_is_on_disk_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1024 * 1024, segment_bytes=400)
    spool.open()
    for n in range(20):
        spool.append(records(n))
    spool.commit(spool.read(200))
    left, size = spool.records, spool.disk_bytes
    spool.close()  # DurableSink.stop() then start() on the same spool
    spool.open()
    assert (spool.records, spool.disk_bytes) == (left, size)
    assert len(drain(spool)) == left and spool.empty
    spool.close()


def test_a_torn_tail_is_cut_and_what_was_whole_survives(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1024 * 1024)
    spool.open()
    for n in range(3):
        spool.append(records(n))
    spool.close()
    segment = max(tmp_path.glob("seg-*.log"))
    with open(segment, "ab") as handle:
        handle.write(b"AWS1\x00\x00\x10\x00garbage")  # a frame whose write never finished (never answered 2xx)
    again = Spool(tmp_path, 1024 * 1024)
    again.open()
    assert drain(again) == [r for n in range(3) for r in records(n)]
    again.append(records(9))
    assert drain(again) == records(9)
    again.close()


def test_a_flipped_byte_is_not_delivered(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1024 * 1024)
    spool.open()
    spool.append(records(1))
    spool.append(records(2))
    spool.close()
    segment = max(tmp_path.glob("seg-*.log"))
    data = bytearray(segment.read_bytes())
    data[-3] ^= 0xFF
    segment.write_bytes(bytes(data))
    again = Spool(tmp_path, 1024 * 1024)
    again.open()
    assert drain(again) == records(1)
    again.close()


def test_full_and_disabled(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "a", 300)
    spool.open()
    spool.append(records(1))
    with pytest.raises(SpoolFullError, match="AIWORKER_SPOOL_MAX_BYTES"):
        for n in range(10):
            spool.append(records(n, size=50))
    spool.close()
    disabled = Spool(tmp_path / "b", 0)
    disabled.open()
    with pytest.raises(SpoolFullError, match="disabled"):
        disabled.append(records(1))
    assert not (tmp_path / "b").exists()


def test_one_directory_per_process(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1024)
    spool.open()
    other = Spool(tmp_path, 1024)
    with pytest.raises(SpoolError, match="its own"):
        other.open()
    spool.close()
    other.open()
    other.close()
    assert os.listdir(tmp_path)
