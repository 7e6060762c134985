"""The fold's intake: consumed records become work items (source, decoded event, ordering entity).

A record comes from `fold.tasks` (a router frame: the source record, its position and the half it
carries, keyed by its ordering entity) or straight from an input topic: a whole event keyed by its
entity (tests and tools fold input topics directly). In the worker (`direct`) the fold also reads
agent.events beside `fold.tasks`, and takes of each record only what `route.direct_part_of` leaves
to it: the whole record (logs, agent-only events), its agent half, or nothing (the router sends it on).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from app import topics
from app.settings import Settings
from streams import decode as decoding
from streams.parking import WorkItem
from streams.route import WHOLE, Source, direct_part_of, route_key, unframe


@dataclass(frozen=True, slots=True)
class ConsumedRecord:
    """A record as the consumer handed it over, from fold.tasks or an input topic: its own position is what the fold
    stores. The event it carries comes from a `Source` (streams/route.py: the record of an input topic): the same
    record when read straight from an input topic, the one framed inside it when read from fold.tasks."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: float = 0.0


class Intake:
    def __init__(self, settings: Settings, *, direct: bool = False) -> None:
        self.direct = direct
        self._short = {settings.topic(name): name for name in topics.ALL_TOPICS}

    def source_of(self, record: ConsumedRecord) -> Source | str:
        """The input record behind a record: unframed from fold.tasks, else the record itself."""
        if self._short.get(record.topic) != topics.FOLD_TASKS:
            return Source(record.topic, record.partition, record.offset, record.key, record.value, record.timestamp)
        try:
            return unframe(record.value)
        except (ValueError, KeyError, TypeError) as exc:
            return f"{record.topic} record is not a router frame: {exc!r}"

    def decode(self, source: Source) -> decoding.Decoded:
        return decoding.decode(self._short.get(source.topic), source)

    def work_items(self, records: Sequence[ConsumedRecord]) -> list[WorkItem]:
        """The work items of these records, in their order (what the router sends on is left out)."""
        items: list[WorkItem] = []
        for record in records:
            source = self.source_of(record)
            if isinstance(source, str):
                broken = Source(record.topic, record.partition, record.offset, record.key, record.value)
                items.append(WorkItem(broken, source, ""))
                continue
            short = self._short.get(source.topic, "")
            if record.topic != source.topic:  # from fold.tasks: the router's key
                items.append(WorkItem(source, self.decode(source), _text(record.key)))
            elif self.direct and short == topics.AGENT_EVENTS:
                part = direct_part_of(source.value)
                if part is None:
                    continue  # the router sends it on to fold.tasks
                if part != WHOLE:
                    source = replace(source, scope=part)
                event = self.decode(source)
                agent = getattr(event, "agent_id", None)  # the agent orders what is read here
                items.append(WorkItem(source, event, agent if isinstance(agent, str) and agent else _text(record.key)))
            else:  # a whole event straight from its input topic: keyed as the router would key it
                items.append(WorkItem(source, self.decode(source), _text(route_key(short, source))))
        return items


def _text(key: bytes | None) -> str:
    return (key or b"").decode("utf-8", "replace")
