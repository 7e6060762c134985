"""The console's session cookie and CSRF token (webhooks/console/session.py), and its pure helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.replay_records import Filters, parse_position
from webhooks.console.render import age, http_url
from webhooks.console.session import SessionKeys

NOW = 1_800_000_000.0


def test_an_issued_cookie_checks_until_it_expires_and_carries_no_token() -> None:
    keys = SessionKeys("the-console-token")
    cookie, session = keys.issue(NOW, 3600)
    assert "the-console-token" not in cookie
    assert keys.check(cookie, NOW + 3599) == session
    assert keys.check(cookie, NOW + 3600) is None


@pytest.mark.parametrize("change", ["expiry", "nonce", "signature", "garbage", "empty"])
def test_a_forged_or_malformed_cookie_is_no_session(change: str) -> None:
    keys = SessionKeys("the-console-token")
    cookie, _ = keys.issue(NOW, 3600)
    expires, nonce, signature = cookie.split(".")
    forged = {
        "expiry": f"{int(expires) + 86400}.{nonce}.{signature}",
        "nonce": f"{expires}.{'0' * len(nonce)}.{signature}",
        "signature": f"{expires}.{nonce}.{'0' * len(signature)}",
        "garbage": "a.b.c.d",
        "empty": "",
    }[change]
    assert keys.check(forged, NOW) is None


def test_another_console_token_ends_every_session_and_csrf_is_per_session() -> None:
    keys = SessionKeys("the-console-token")
    cookie, session = keys.issue(NOW, 3600)
    assert SessionKeys("a-new-token").check(cookie, NOW) is None
    _, other = keys.issue(NOW, 3600)
    assert keys.csrf_matches(session, session.csrf)
    assert not keys.csrf_matches(session, other.csrf) and not keys.csrf_matches(session, "")


def test_the_token_is_compared_whole_and_an_empty_one_never_matches() -> None:
    assert SessionKeys("secret").token_matches("secret")
    assert not SessionKeys("secret").token_matches("secre") and not SessionKeys("secret").token_matches("secret ")
    assert not SessionKeys("").token_matches("")


def test_only_http_urls_become_links_and_ages_are_short() -> None:
    assert http_url("https://git.example.com/o/r/pulls/1") == "https://git.example.com/o/r/pulls/1"
    assert http_url("javascript:alert(1)") == "" and http_url("data:text/html,x") == "" and http_url(None) == ""
    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert age(now - timedelta(seconds=42), now) == "42s" and age(now - timedelta(hours=3), now) == "3h"
    assert age(None, now) == ""


def test_a_dlq_position_filter_picks_that_record_only() -> None:
    assert parse_position("3@42") == (3, 42)
    with pytest.raises(ValueError, match="PARTITION@OFFSET"):
        parse_position("3:42")
    assert "at 3@42" in Filters(positions=((3, 42),)).describe()


def test_the_deliveries_filter_picks_the_index_of_its_first_given_field() -> None:
    from db.console import DeliveryFilter

    assert DeliveryFilter().sql() == ("idx_fold_outcomes_origin", "origin = %s", ["delivery"])
    index, where, params = DeliveryFilter(repository="acme/shop", outcome="refused").sql()
    assert index == "idx_fold_outcomes_repository" and params == ["delivery", "acme/shop", "refused"]
    assert where == "origin = %s AND repository = %s AND outcome = %s"
    assert DeliveryFilter(delivery_id="d1", repository="x").sql()[0] == "idx_fold_outcomes_delivery"
    assert DeliveryFilter(origin="reconcile", event_type="push").sql()[0] == "idx_fold_outcomes_origin"
    assert DeliveryFilter(outcome="refused").windowed() and not DeliveryFilter(repository="a/b", outcome="refused").windowed()
    assert not DeliveryFilter().windowed()


def test_a_task_timeline_orders_milestones_trace_questions_and_deployments() -> None:
    from app.trace import Trace, TracedEvent
    from webhooks.console.timeline import timeline

    t0 = datetime(2026, 12, 1, 10, 0)
    record = {"id": 1, "event_id": "ts-1", "scope": "task", "event_type": "task.started", "delivery_id": None,
              "origin": None, "task_id": "t1", "agent_id": "a1", "source_topic": "agent.events", "source_partition": 0,
              "source_offset": 7, "received_at": t0, "folded_at": t0 + timedelta(seconds=2), "outcome": "refused",
              "reason": "another agent's task", "dlq_id": "dlq-1", "still_parked": False, "waiting": False}  # fmt: skip
    transition = {"id": 2, "transition_id": "tr-1", "cause_id": "ts-1", "entity": "task", "entity_id": "t1",
                  "from_state": None, "to_state": "backlog", "folded_at": t0 + timedelta(seconds=1), "waiting": True}  # fmt: skip
    found = Trace("t1", [TracedEvent("ts-1", [record], [transition])], truncated=False)
    task = {"created_at": t0, "started_at": None}
    question = {"id": "q1", "question": "<b>why?</b>", "asked_at": t0 + timedelta(seconds=3), "responded_at": None,
                "responded_by": None, "response": None}  # fmt: skip
    items = timeline(task, found, [question], [])
    assert [i["kind"] for i in items] == ["row", "transition", "refused", "question"]
    assert items[1]["what"] == "∅ → backlog" and "in the outbox" in items[1]["detail"]
    assert items[2]["what"] == "task.started (task half): refused" and "dlq-1" in items[2]["detail"]
    assert items[3]["detail"] == "<b>why?</b>"  # escaped by the template, not here
