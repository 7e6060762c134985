"""The hot path's shortcuts write and decide exactly what the slower originals did."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from app.envelope import GiteaEnvelope, delivery_event_id, encode_envelope, make_envelope
from app.producer import KeyPartitioner

utc_times = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC))


@given(
    delivery=st.text(min_size=1, max_size=191),
    kind=st.text(max_size=100),
    group=st.text(max_size=100),
    when=utc_times,
    repository=st.text(max_size=255),
    payload=st.text(max_size=300),
    project_id=st.none() | st.text(max_size=36),
)
def test_encode_envelope_writes_the_models_json(
    delivery: str, kind: str, group: str, when: datetime, repository: str, payload: str, project_id: str | None
) -> None:
    if not _utf8(payload):
        return
    expected = make_envelope(
        delivery_id=delivery,
        event_type=kind,
        event_group=group,
        received_at=when,
        repository=repository,
        payload=payload.encode(),
        project_id=project_id,
    ).encode()
    written = encode_envelope(
        delivery_id=delivery, event_type=kind, event_group=group, received_at=when, repository=repository,
        payload=payload, project_id=project_id, event_id=delivery_event_id(project_id, kind, payload.encode()),
    )  # fmt: skip
    assert written == expected
    assert GiteaEnvelope.decode(written) == GiteaEnvelope.decode(expected)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def test_encode_envelope_keeps_the_models_refusals_and_offsets() -> None:
    moment = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
    same = {"event_group": "", "received_at": moment, "repository": "", "payload": "{}", "event_id": "gitea:e"}
    with pytest.raises(ValidationError):
        encode_envelope(delivery_id="", event_type="push", project_id=None, **same)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        encode_envelope(delivery_id="d", event_type="x" * 101, project_id=None, **same)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        encode_envelope(delivery_id="d", event_type="push", project_id="p" * 37, **same)  # type: ignore[arg-type]
    elsewhere = moment.astimezone(timezone(timedelta(hours=2)))
    written = encode_envelope(
        delivery_id="d", event_type="push", event_group="push", received_at=elsewhere, repository="o/r", payload="{}",
        project_id="p1", event_id=delivery_event_id("p1", "push", b"{}"),
    )  # fmt: skip
    model = make_envelope(
        delivery_id="d", event_type="push", event_group="push", received_at=elsewhere, repository="o/r", payload=b"{}",
        project_id="p1",
    )  # fmt: skip
    assert written == model.encode()


@given(key=st.binary(max_size=64), partitions=st.integers(min_value=1, max_value=64))
def test_key_partitioner_is_the_default_one(key: bytes, partitions: int) -> None:
    every = list(range(partitions))
    cached = KeyPartitioner()
    assert cached(key, every, every) == DefaultPartitioner()(key, every, every)
    assert cached(key, every, every) == DefaultPartitioner()(key, every, every)
