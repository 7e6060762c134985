"""Fold batches bounded by bytes as well as by count: Faust hands the fold up to WORKER_BATCH_SIZE records; they
are folded in runs of at most WORKER_BATCH_BYTES (keys and values), one transaction each, in their order. A record
bigger than that is a run of its own. The transaction's memory, its statements (db/packets.py chunks them below
the server's max_allowed_packet) and its lock time stay bounded whatever the records weigh."""

from __future__ import annotations

from collections.abc import Sequence

from streams.intake import ConsumedRecord


def by_bytes(records: Sequence[ConsumedRecord], max_bytes: int) -> list[list[ConsumedRecord]]:
    """`records` in order, cut into runs of at most `max_bytes` (a record over it alone)."""
    runs: list[list[ConsumedRecord]] = []
    run: list[ConsumedRecord] = []
    size = 0
    for record in records:
        weight = len(record.value) + len(record.key or b"")
        if run and size + weight > max_bytes:
            runs.append(run)
            run, size = [], 0
        run.append(record)
        size += weight
    if run:
        runs.append(run)
    return runs
