"""The fold engine: a batch of records becomes one MySQL transaction (streams/fold_transaction.py), exactly once.

When the batch's transaction fails for any reason but trouble (database, broker: the caller retries those), the
batch is folded record by record, each in its own transaction: a record that fails alone goes to the dlq, or,
when a run of records fails alike (the code fails, not the records), HeldError holds the partition (db/errors.py).
A failure may be an event the record wakes rather than the record: then each is blamed on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from app.settings import Settings
from db.errors import HeldError, Suspects, describe, refused_by_data, transient
from streams.fold_transaction import FoldTransactions
from streams.intake import ConsumedRecord
from streams.outcomes import FoldStats

log = logging.getLogger(__name__)


class Fold(FoldTransactions):
    """Folds batches of records into the database; see the module docstring."""

    def __init__(self, pool: Any, settings: Settings, *, direct: bool = False) -> None:
        super().__init__(pool, settings, direct=direct)
        self.suspects = Suspects()

    async def apply_batch(self, records: Sequence[ConsumedRecord]) -> FoldStats:
        """Fold the batch in one transaction; on any failure but trouble, record by record (db/errors.py):
        a record that fails alone goes to the dlq, or, when the failure is the code's, HeldError holds the
        partition. Trouble (database, broker) raises for the caller to retry."""
        try:
            stats = await self._transaction(records)
        except Exception as exc:
            if transient(exc):
                raise
            log.warning("batch of %d hit %s; folding it record by record", len(records), describe(exc))
        else:
            self._evidence(stats)
            return stats
        stats = FoldStats()
        for record in records:
            stats.add(await self._record_alone(record))
        return stats

    def _evidence(self, stats: FoldStats) -> None:
        """A record the code handled (not one skipped as replayed or as a duplicate) ends a run of suspects."""
        if stats.applied or stats.unchanged or stats.refused or stats.parked or stats.logs or stats.ignored:
            self.suspects.applied()

    def _blame(self, exc: Exception, where: str) -> str:
        """The dlq reason of a record (or woken event) that failed alone, or HeldError when the failure is the code's."""
        if transient(exc):
            raise exc
        if refused_by_data(exc):
            log.error("%s refused by the database: %s; it goes to the dlq", where, describe(exc))
            return f"database refused the change: {describe(exc)}: {exc.args[-1]}"  # the server's words on the values
        if self.suspects.failed(exc):
            raise HeldError(
                f"{where}: {describe(exc)}, the {self.suspects.run}th record in a row to fail this way: the code fails, "
                "not the record; the partition is held (fix and redeploy, nothing is skipped)"
            ) from exc
        log.error("%s failed: %s; it goes to the dlq", where, describe(exc), exc_info=exc)
        return f"the fold failed on this record: {describe(exc)}"

    async def _record_alone(self, record: ConsumedRecord) -> FoldStats:
        """One record in its own transaction. The failure may be an event the record wakes (parked earlier,
        waiting for a row the record creates) rather than the record itself: then the record is folded without
        waking them, and they are folded one by one after it, each blamed on its own. Blaming the record would
        dead-letter a good event, keep the bad one parked, and refuse every later creator of that row in turn."""
        try:
            stats = await self._transaction([record])
        except Exception as exc:
            if transient(exc):
                raise
        else:
            self._evidence(stats)
            return stats
        created: list[tuple[str, str]] = []
        try:
            stats = await self._transaction([record], wake=False, created=created)
        except Exception as exc:  # noqa: BLE001 - _blame: trouble re-raised, else the dlq or a hold
            reason = self._blame(exc, f"record {record.topic}/{record.partition}@{record.offset}")
            return await self._transaction([record], refuse=reason, poison=True)
        self._evidence(stats)
        stats.add(await self._wake_one_by_one(created))
        return stats

    async def _wake_one_by_one(self, rows: list[tuple[str, str]]) -> FoldStats:
        """Fold the events parked for these rows one per transaction, oldest first; those that fail go to the dlq
        (as `_blame` says), the others apply (and the rows they create wake their waiters likewise)."""
        stats = FoldStats()
        queue = list(rows)
        while queue:
            wait = queue.pop(0)
            while True:
                created: list[tuple[str, str]] = []
                try:
                    taken = await self._transaction([], wake=False, created=created, woken=wait)
                except Exception as exc:  # noqa: BLE001 - _blame: trouble re-raised, else the dlq or a hold
                    reason = self._blame(exc, "event parked for {} {}".format(*wait))
                    taken = await self._transaction([], refuse=reason, woken=wait, poison=True)
                else:
                    if taken is not None:
                        self._evidence(taken)
                if taken is None:
                    break
                stats.add(taken)
                queue += created
        return stats
