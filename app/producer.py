"""Every Kafka producer of the service is built here, from Settings: the web's publisher (webhooks/publisher.py),
the worker's router, relay and dlq writes (streams/worker.py), replay's re-drive, k8s-watch and reconcile.

One configuration for all of them: acks=all (a record counts once every in-sync replica has it), idempotence when
the broker supports it (`KAFKA_IDEMPOTENCE`, real Kafka), `KAFKA_COMPRESSION`, `KAFKA_LINGER_MS`, and
`max_request_size` = what every topic takes (app/topics.py), so that a record too large for the broker is refused
here, before it is sent, with aiokafka's MessageSizeTooLargeError. Keys go to partitions as with aiokafka's default
partitioner (murmur2), with the hash of recent keys remembered.
"""

from __future__ import annotations

import random

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from app.settings import Settings
from app.topics import topic_message_bytes

MAX_BATCH_BYTES = 256 * 1024
"""Records gathered per partition into one batch (aiokafka's default is 16 KiB: one 4 KiB delivery, a few logs)."""


class KeyPartitioner:
    """aiokafka's DefaultPartitioner with the murmur2 hash of recent keys remembered (pure Python in aiokafka,
    and most records name a repository or agent seen just before): the same partition for the same key."""

    MAX_KEYS = 4096

    def __init__(self) -> None:
        self._hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return random.choice(available or all_partitions)
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self.MAX_KEYS:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


def kafka_producer(settings: Settings, bootstrap: str, *, request_timeout_ms: int = 40_000) -> AIOKafkaProducer:
    """A producer (not started) with the service's settings. `request_timeout_ms` is how long a batch may wait for
    the broker before it expires (the web keeps it short: a request gives up much earlier and spools)."""
    compression = None if settings.kafka_compression == "none" else settings.kafka_compression
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=settings.kafka_idempotence,
        compression_type=compression,
        linger_ms=settings.kafka_linger_ms,
        max_request_size=topic_message_bytes(settings),
        max_batch_size=MAX_BATCH_BYTES,
        request_timeout_ms=request_timeout_ms,
        retry_backoff_ms=100,
        partitioner=KeyPartitioner(),
    )
