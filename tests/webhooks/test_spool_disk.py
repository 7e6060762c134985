"""The spool on a disk that fills up (a small tmpfs of the test's own) and on one whose fsync fails: nothing is
acknowledged that is not on disk, nothing on disk is left unanswered, and the spool works again afterwards."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.webhooks.small_disk import small_disk
from webhooks.publisher import OutRecord
from webhooks.spool import Spool, SpoolError, SpoolFullError

DISK_BYTES = 64 * 1024


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with small_disk(tmp_path / "disk", DISK_BYTES) as mounted:
        yield mounted


def request(n: int, size: int = 3000) -> list[OutRecord]:
    """One request's records; random bytes, so that no filesystem could store them in less than their size."""
    return [OutRecord("t.agent.events", f"agent-{n}".encode(), f"#{n}:".encode() + os.urandom(size))]


def fill(spool: Spool) -> tuple[list[OutRecord], SpoolError]:
    """Append requests until the disk refuses one; the records of those appended, and the refusal."""
    accepted: list[OutRecord] = []
    for n in range(1000):
        records = request(n)
        try:
            spool.append(records)
        except SpoolError as exc:
            return accepted, exc
        accepted += records
    raise AssertionError("the disk never filled")


def drain(spool: Spool) -> list[OutRecord]:
    out: list[OutRecord] = []
    while entries := spool.read(8 * 1024):
        out += [r for e in entries for r in e.records]
        spool.commit(entries)
    return out


def test_a_write_that_hits_a_full_disk_is_refused_cut_back_and_the_spool_works_again(disk: Path) -> None:
    spool = Spool(disk / "spool", 10 * 1024 * 1024, segment_bytes=16 * 1024)  # its bound is not what stops it
    spool.open()
    accepted, refusal = fill(spool)
    assert not isinstance(refusal, SpoolFullError) and "free space" in str(refusal)
    assert isinstance(refusal.__cause__, OSError) and refusal.__cause__.errno == errno.ENOSPC
    assert len(accepted) >= 5 and spool.records == len(accepted)
    on_disk = sum(p.stat().st_size for p in (disk / "spool").glob("seg-*.log"))
    assert on_disk == spool.disk_bytes  # the refused frame was cut back: not a byte of it is left
    with pytest.raises(SpoolError):
        spool.append(request(5000, size=20_000))  # still full
    spool.close()
    again = Spool(disk / "spool", 10 * 1024 * 1024, segment_bytes=16 * 1024)
    again.open()  # a restart on the full disk: exactly what was accepted, no torn frame to cut
    assert again.records == len(accepted)
    assert drain(again) == accepted  # the drain's cursor needs no new block on the full disk
    later = request(7000)
    again.append(later)  # the drain freed the disk
    assert drain(again) == later
    again.close()


def test_space_freed_by_someone_else_makes_the_spool_take_records_again(disk: Path) -> None:
    filler = disk / "filler"
    filler.write_bytes(os.urandom(DISK_BYTES - 16 * 1024))
    spool = Spool(disk / "spool", 10 * 1024 * 1024)
    spool.open()
    accepted, refusal = fill(spool)
    assert isinstance(refusal.__cause__, OSError) and accepted
    filler.unlink()
    later = request(999)
    spool.append(later)
    assert drain(spool) == accepted + later
    spool.close()


def test_a_failed_fsync_fails_closed_until_a_restart_and_keeps_what_was_synced(tmp_path: Path) -> None:
    calls = {"n": 0}

    def dying_fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(errno.EIO, "Input/output error")
        os.fsync(fd)

    spool = Spool(tmp_path, 1024 * 1024, fsync=dying_fsync)
    spool.open()  # fsync 1: the cursor
    spool.append(request(1))  # 2
    spool.append(request(2))  # 3
    with pytest.raises(SpoolError, match="failed closed"):
        spool.append(request(3))  # 4: fails
    with pytest.raises(SpoolError, match="failed closed"):
        spool.append(request(4))  # the disk may be fine again: the spool does not trust it
    assert spool.broken and spool.records == 2
    spool.close()
    restarted = Spool(tmp_path, 1024 * 1024)
    restarted.open()
    assert restarted.records == 2 and not restarted.broken
    restarted.append(request(5))
    assert [r.value[:3] for r in drain(restarted)] == [b"#1:", b"#2:", b"#5:"]
    restarted.close()
