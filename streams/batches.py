"""Fold batches bounded by bytes as well as by count: Faust hands the fold up to WORKER_BATCH_SIZE records; they
are folded in runs of at most WORKER_BATCH_BYTES (keys and values), one transaction each, in their order. A record
bigger than that is a run of its own. The transaction's memory, its statements (db/packets.py chunks them below
the server's max_allowed_packet) and its lock time stay bounded whatever the records weigh.

Records of different topics are folded in transactions of their own (`by_topic`): the agent partitions' records (a
batch of heartbeats and thousands of log lines, a few hundred ms of statements) and fold.tasks' (a few task events)
lock rows of each other's entities (a task half locks its agent's row; log lines' foreign keys lock their tasks'),
and the other worker waits for whatever a transaction holds until it commits. Mixed, every small task event held
its agent rows for a heavy batch's whole time, and heavy batches waited for each other across the workers (under
the fleet benchmark's load, transactions of seconds). Apart, a heavy transaction waits at most for a short one.
The batch is cut where the topic changes, not regrouped: the records are applied in the order Faust handed them
(a task.created before the log lines that name its task, say), only in more transactions."""

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


def by_topic(records: Sequence[ConsumedRecord]) -> list[list[ConsumedRecord]]:
    """`records` cut where the topic changes: runs of one topic each, in the records' order (the fold applies them
    in exactly the order it was handed them; only the transactions' bounds move)."""
    runs: list[list[ConsumedRecord]] = []
    for record in records:
        if runs and runs[-1][0].topic == record.topic:
            runs[-1].append(record)
        else:
            runs.append([record])
    return runs


def fold_runs(records: Sequence[ConsumedRecord], max_bytes: int) -> list[list[ConsumedRecord]]:
    """The transactions a batch is folded in: by topic, then by bytes."""
    return [run for group in by_topic(records) for run in by_bytes(group, max_bytes)]
