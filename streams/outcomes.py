"""What the fold did: counts per batch (`FoldStats`), by outcome and dlq reason, and the refusals to log.

The worker turns them into metrics (streams/monitor.py) and its per-batch log line; the labels come from bounded
sets (sources, contract event types, GITEA.md's Gitea types, OUTCOMES, DLQ_REASONS), so the series stay few.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from app import topics
from app.envelope import GiteaEnvelope
from app.observe import gitea_type_label
from streams.parking import WorkItem
from streams.route import Source

COUNTERS = ("applied", "unchanged", "refused", "invalid", "duplicates", "replayed", "parked", "logs")
OUTCOMES = ("applied", "unchanged", "ignored", "refused", "invalid", "duplicate", "parked")
"""What the fold did with one event (`aiworker_fold_events_total{outcome}`)."""
DLQ_REASONS = ("invalid", "refused", "poison", "partial", "parked_expired", "unpublishable")
"""Why a record went to the dlq (`aiworker_dlq_records_total{reason}`): it is no valid event of its topic; its machine
(or the log rules) refused it; the database refused its values, or the code failed on them (a poison record, in the
fold or the router: db/errors.py); it applied but left a part aside
(a note); it waited for a row longer than PARK_SECONDS (streams/sweeper.py); the broker cannot take an outbox row
(streams/relay.py replaces it by a note)."""
K = TypeVar("K")
SOURCES = {topics.GITEA_WEBHOOKS: "gitea", topics.AGENT_EVENTS: "agent", topics.CONTROL_EVENTS: "control"}


@dataclass(frozen=True, slots=True)
class Refusal:
    """An event the fold sent to the dlq, for the log line after its transaction committed."""

    event_type: str
    event_id: str
    reason: str
    source: Source
    task_id: str | None = None
    agent_id: str | None = None
    delivery_id: str | None = None


@dataclass(slots=True)
class FoldStats:
    applied: int = 0
    unchanged: int = 0
    refused: int = 0
    invalid: int = 0
    duplicates: int = 0
    replayed: int = 0
    parked: int = 0
    logs: int = 0
    ignored: dict[str, int] = field(default_factory=dict)
    events: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """(source, type, outcome) -> events."""
    dlq: dict[str, int] = field(default_factory=dict)
    """dlq reason class -> records."""
    refusals: list[Refusal] = field(default_factory=list)

    def add(self, other: FoldStats) -> None:
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        _merge(self.ignored, other.ignored)
        _merge(self.dlq, other.dlq)
        _merge(self.events, other.events)
        self.refusals += other.refusals

    def outcomes(self) -> dict[str, int]:
        """Events by outcome (all sources and types)."""
        out: dict[str, int] = {}
        for (_source, _type, outcome), count in self.events.items():
            out[outcome] = out.get(outcome, 0) + count
        return out

    def summary(self) -> str:
        """One line: events by outcome, dlq records, log lines (what a console shows per folded batch)."""
        parts = [f"{count} {outcome}" for outcome, count in sorted(self.outcomes().items())]
        parts += [f"{count} to the dlq ({reason})" for reason, count in sorted(self.dlq.items())]
        if self.logs:
            parts.append(f"{self.logs} log line(s)")
        if self.replayed:
            parts.append(f"{self.replayed} already folded")
        return ", ".join(parts) or "nothing to fold"


def _merge(counts: dict[K, int], more: dict[K, int]) -> None:
    for key, count in more.items():
        counts[key] = counts.get(key, 0) + count


def label_of(work: WorkItem, topic_of: dict[str, str]) -> tuple[str, str]:
    """(source, type) of a work item as metric labels: both from bounded sets."""
    source = SOURCES.get(topic_of.get(work.source.topic, ""), "other")
    item = work.item
    if isinstance(item, str):
        return source, "unknown"
    if isinstance(item, GiteaEnvelope):
        return source, gitea_type_label(item.event_type)
    return source, item.type
