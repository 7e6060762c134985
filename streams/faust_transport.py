"""Faust's aiokafka transport with a configurable fetch wait.

Faust creates its consumer with `fetch_max_wait_ms=1500`. Kafka answers a fetch as soon as data
arrives, but Tansu answers only at the deadline, so each stage would add ~0.4 s (up to 1.5 s) of
latency there. This transport sets the wait from AIWORKER_KAFKA_FETCH_MAX_WAIT_MS instead.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = int(transport.fetch_max_wait_ms)  # read by the consumer's fetcher at start
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class TunedTransport(faust_aiokafka.Transport):
    Consumer = _Consumer

    def __init__(self, url: Any, app: faust.App, *, fetch_max_wait_ms: int) -> None:
        super().__init__(url, app)
        self.fetch_max_wait_ms = fetch_max_wait_ms


def install(app: faust.App, fetch_max_wait_ms: int) -> None:
    """Give `app` the tuned transport (before the worker starts)."""
    app.transport = TunedTransport(app.conf.broker_consumer, app, fetch_max_wait_ms=fetch_max_wait_ms)
