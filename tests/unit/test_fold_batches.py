"""Fold batches cut by bytes (streams/batches.py): order kept, every run within the bound, a big record alone."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from streams.batches import by_bytes
from streams.intake import ConsumedRecord


def record(offset: int, size: int) -> ConsumedRecord:
    return ConsumedRecord("t.fold.tasks", 0, offset, b"k", b"v" * size)


def test_runs_keep_the_order_and_the_bound_and_a_big_record_goes_alone() -> None:
    records = [record(0, 400), record(1, 500), record(2, 2000), record(3, 10), record(4, 990)]
    runs = by_bytes(records, 1000)
    assert [[r.offset for r in run] for run in runs] == [[0, 1], [2], [3], [4]]


@given(st.lists(st.integers(0, 3000), max_size=60), st.integers(1, 4000))
def test_any_records_cut_anywhere(sizes: list[int], bound: int) -> None:
    records = [record(n, size) for n, size in enumerate(sizes)]
    runs = by_bytes(records, bound)
    assert [r for run in runs for r in run] == records and all(runs)
    for run in runs:
        weight = sum(len(r.value) + len(r.key or b"") for r in run)
        assert weight <= bound or len(run) == 1
    for before, after in itertools.pairwise(runs):  # no run could have taken the next record too
        assert sum(len(r.value) + 1 for r in before) + len(after[0].value) + 1 > bound
