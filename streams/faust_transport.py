"""Faust's aiokafka transport with a configurable fetch wait, resuming from the positions MySQL stores.

Faust creates its consumer with `fetch_max_wait_ms=1500`. Kafka answers a fetch as soon as data
arrives, but Tansu answers only at the deadline, so each stage would add ~0.4 s (up to 1.5 s) of
latency there. This transport sets the wait from AIWORKER_KAFKA_FETCH_MAX_WAIT_MS instead.

Positions are the database's: after every assignment Faust seeks its partitions to their committed Kafka
offsets (`seek_to_committed`, also when its flow restarts). Here the fold's own partitions resume from the
next offsets stored in `fold_positions` instead (0, their beginning, where none is stored), so a wrong offset
commit (faust-streaming #606 is such a bug) can neither skip records nor replay them. Kafka's committed
offsets stay what Faust commits after each batch (for lag tools), never where the fold resumes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, cast

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

log = logging.getLogger(__name__)
Positions = Callable[[], Awaitable[Mapping[tuple[str, int], int]]]
"""The next offsets the fold stored per (topic, partition)."""


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = int(transport.fetch_max_wait_ms)  # read by the consumer's fetcher at start
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek the fold's partitions to their stored positions (see the module docstring), the rest to Kafka's."""
        committed = dict(await super().seek_to_committed())
        transport = cast(TunedTransport, self.transport)
        mine = [tp for tp in self.assignment() if tp.topic in transport.position_topics]
        if transport.positions is None or not mine:
            return committed
        stored = await transport.positions()
        resume = {tp: stored.get((tp.topic, tp.partition), 0) for tp in mine}
        await self.seek_wait(resume)
        ahead = {f"{tp.topic}/{tp.partition}": (committed[tp], at) for tp, at in resume.items() if (committed.get(tp) or 0) > at}
        if ahead:  # behind is usual (Faust commits every few seconds); ahead would have skipped records
            log.warning(
                "Kafka's committed offsets are ahead of the stored positions (committed, stored): %s; resuming from the "
                "stored positions, nothing is skipped", ahead,
            )  # fmt: skip
        committed.update(resume)
        return committed


class TunedTransport(faust_aiokafka.Transport):
    Consumer = _Consumer

    def __init__(
        self, url: Any, app: faust.App, *, fetch_max_wait_ms: int, positions: Positions | None = None,
        position_topics: Collection[str] = (),
    ) -> None:  # fmt: skip
        super().__init__(url, app)
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.positions = positions
        self.position_topics = frozenset(position_topics)


def install(
    app: faust.App, fetch_max_wait_ms: int, positions: Positions | None = None, position_topics: Collection[str] = ()
) -> None:
    """Give `app` the tuned transport (before the worker starts); `positions` of `position_topics` say where the
    fold resumes after an assignment."""
    app.transport = TunedTransport(
        app.conf.broker_consumer, app, fetch_max_wait_ms=fetch_max_wait_ms, positions=positions,
        position_topics=position_topics,
    )  # fmt: skip
