"""Publishing accepted events: returns only once the broker acknowledged every record (acks=all)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from app.settings import Settings
from webhooks import WebhooksError


class PublishError(WebhooksError):
    """The records could not be made durable; nothing may be answered 2xx."""


@dataclass(frozen=True, slots=True)
class OutRecord:
    topic: str
    key: bytes
    value: bytes


class KafkaPublisher:
    """An aiokafka producer with the durability settings the contract asks for."""

    def __init__(self, settings: Settings, bootstrap: str, *, send_timeout: float = 4.0) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.send_timeout = send_timeout
        self.producer: AIOKafkaProducer | None = None
        self.last_ok = 0.0

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=self.settings.kafka_idempotence,
            linger_ms=self.settings.kafka_linger_ms,
            compression_type=None if self.settings.kafka_compression == "none" else self.settings.kafka_compression,
            max_request_size=max(self.settings.max_body_bytes + 64 * 1024, 1024 * 1024),
            request_timeout_ms=int(self.send_timeout * 1000),
        )
        await self.producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None

    async def publish(self, records: list[OutRecord]) -> None:
        """Send all records and wait for every acknowledgement, or raise PublishError."""
        if self.producer is None:
            raise PublishError("the producer is not started")
        try:
            async with asyncio.timeout(self.send_timeout):
                futures = [await self.producer.send(r.topic, value=r.value, key=r.key) for r in records]
                await asyncio.gather(*futures)
        except (KafkaError, TimeoutError, OSError) as exc:
            raise PublishError(f"the broker did not acknowledge the events: {exc!r}") from exc
        self.last_ok = time.monotonic()
