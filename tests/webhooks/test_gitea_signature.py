"""webhooks.gitea_signature: Gitea's signatures, payload extraction and event headers."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from tests.gitea_samples import Sample, form_body, load_sample, load_samples, sign
from webhooks.gitea_signature import (
    GiteaPayloadError,
    SignatureStatus,
    UnsupportedContentTypeError,
    delivery_id,
    event_type,
    extract_payload,
    parse_payload,
    verify,
)

SECRET = "s3cr3t-webhook-key"
SAMPLES = load_samples()
ISSUE = load_sample("issues__opened_aiworker")


def _only(headers: dict[str, str], *keep: str) -> dict[str, str]:
    signatures = {"X-Gitea-Signature", "X-Gogs-Signature", "X-Hub-Signature", "X-Hub-Signature-256"}
    return {k: v for k, v in headers.items() if k not in signatures or k in keep}


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_every_sample_verifies_with_its_secret(sample: Sample) -> None:
    check = verify(sample.payload_bytes, sample.signed_headers(SECRET), [SECRET])
    assert check.ok, check.message
    assert check.status is SignatureStatus.OK
    assert check.header == "X-Gitea-Signature"
    assert check.secret_index == 0
    assert event_type(sample.headers) == sample.event_type
    assert delivery_id(sample.headers) == sample.headers["X-Gitea-Delivery"]


def test_samples_cover_every_event_type_of_gitea_md() -> None:
    documented = {
        "create", "delete", "fork", "push", "wiki", "repository", "release", "package", "status", "workflow_run",
        "workflow_job", "issues", "issue_assign", "issue_label", "issue_milestone", "issue_comment",
        "pull_request_comment", "pull_request", "pull_request_assign", "pull_request_label",
        "pull_request_milestone", "pull_request_sync", "pull_request_review_request", "pull_request_review_approved",
        "pull_request_review_rejected", "pull_request_review_comment",
    }  # fmt: skip
    assert {s.event_type for s in SAMPLES} == documented
    for sample in SAMPLES:
        assert sample.headers["X-Gitea-Event-Type"] == sample.event_type
        assert 1000 < len(sample.payload_bytes) < 8000, sample.name
        assert not any("signature" in name.lower() for name in sample.headers)


def test_hub_signature_256_alone_verifies() -> None:
    headers = _only(ISSUE.signed_headers(SECRET), "X-Hub-Signature-256")
    check = verify(ISSUE.payload_bytes, headers, [SECRET])
    assert check.ok and check.header == "X-Hub-Signature-256"


def test_gitea_signature_alone_verifies() -> None:
    headers = _only(ISSUE.signed_headers(SECRET), "X-Gitea-Signature")
    assert verify(ISSUE.payload_bytes, headers, [SECRET]).ok


def test_wrong_secret_is_a_mismatch_with_a_useful_message() -> None:
    check = verify(ISSUE.payload_bytes, ISSUE.signed_headers("another-secret"), [SECRET])
    assert check.status is SignatureStatus.MISMATCH and not check.ok
    assert check.message == (
        "X-Gitea-Signature does not match the payload signed with the repository's secret; check the webhook secret in Gitea"
    )


def test_tampered_or_reserialized_payload_is_a_mismatch() -> None:
    headers = ISSUE.signed_headers(SECRET)
    tampered = ISSUE.payload_bytes.replace(b'"opened"', b'"closed"', 1)
    assert verify(tampered, headers, [SECRET]).status is SignatureStatus.MISMATCH
    reserialized = json.dumps(ISSUE.payload, indent=2).encode()
    assert verify(reserialized, headers, [SECRET]).status is SignatureStatus.MISMATCH


def test_missing_signature() -> None:
    check = verify(ISSUE.payload_bytes, ISSUE.headers, [SECRET])
    assert check.status is SignatureStatus.MISSING and check.header is None
    assert "X-Gitea-Signature" in check.message


def test_empty_digests_mean_unsigned() -> None:
    headers = ISSUE.signed_headers("")
    assert headers["X-Hub-Signature-256"] == "sha256=" and headers["X-Gitea-Signature"] == ""
    assert verify(ISSUE.payload_bytes, headers, [SECRET]).status is SignatureStatus.MISSING
    assert verify(ISSUE.payload_bytes, {"X-Hub-Signature-256": " sha256= "}, [SECRET]).status is SignatureStatus.MISSING


def test_uppercase_hex_is_tolerated() -> None:
    signed = sign(ISSUE.payload_bytes, SECRET)
    upper = {"X-Gitea-Signature": signed["X-Gitea-Signature"].upper()}
    assert verify(ISSUE.payload_bytes, upper, [SECRET]).ok
    hub = {"X-Hub-Signature-256": "SHA256=" + signed["X-Gitea-Signature"].upper()}
    assert verify(ISSUE.payload_bytes, hub, [SECRET]).ok


def test_rotated_secret_matches_the_previous_one() -> None:
    headers = ISSUE.signed_headers("old-secret")
    check = verify(ISSUE.payload_bytes, headers, ["new-secret", "old-secret"])
    assert check.ok and check.secret_index == 1
    assert verify(ISSUE.payload_bytes, ISSUE.signed_headers("new-secret"), ["new-secret", "old-secret"]).ok
    assert not verify(ISSUE.payload_bytes, headers, ["new-secret"]).ok


def test_no_secret_configured_cannot_verify() -> None:
    check = verify(ISSUE.payload_bytes, ISSUE.signed_headers(SECRET), ["", ""])
    assert check.status is SignatureStatus.MISMATCH and "no webhook secret" in check.message
    assert verify(ISSUE.payload_bytes, ISSUE.signed_headers(SECRET), []).status is SignatureStatus.MISMATCH


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Gitea-Signature": "zz" * 32},
        {"X-Gitea-Signature": "abc123"},
        {"X-Hub-Signature-256": "sha1=" + "a" * 64},
        {"X-Hub-Signature-256": "a" * 64},
        {"X-Gitea-Signature": "é" * 64},
    ],
)
def test_malformed_signatures(headers: dict[str, str]) -> None:
    check = verify(ISSUE.payload_bytes, headers, [SECRET])
    assert check.status is SignatureStatus.MALFORMED
    assert "64 hex digits" in check.message


@pytest.mark.parametrize("transform", [str.lower, str.upper, lambda name: name])
def test_header_names_are_case_insensitive(transform: object) -> None:
    assert callable(transform)
    headers = {transform(k): v for k, v in ISSUE.signed_headers(SECRET).items()}
    assert verify(ISSUE.payload_bytes, headers, [SECRET]).ok
    assert event_type(headers) == "issues"
    assert delivery_id(headers) == ISSUE.headers["X-Gitea-Delivery"]


def test_multidict_headers() -> None:
    headers = CIMultiDict((k.lower(), v) for k, v in ISSUE.signed_headers(SECRET).items())
    assert verify(ISSUE.payload_bytes, headers, [SECRET]).ok


def test_json_body_is_the_payload() -> None:
    assert extract_payload("application/json", ISSUE.payload_bytes) is ISSUE.payload_bytes
    assert extract_payload("Application/JSON; charset=utf-8", ISSUE.payload_bytes) == ISSUE.payload_bytes


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_form_body_yields_the_signed_payload(sample: Sample) -> None:
    payload = extract_payload("application/x-www-form-urlencoded", form_body(sample.payload_bytes))
    assert payload == sample.payload_bytes
    assert verify(payload, sample.signed_headers(SECRET), [SECRET]).ok


def test_form_field_order_and_other_fields() -> None:
    body = b"other=1&payload=%7B%22a%22%3A+%22x+y%22%7D&x="
    assert extract_payload("application/x-www-form-urlencoded; charset=utf-8", body) == b'{"a": "x y"}'


@pytest.mark.parametrize(
    ("content_type", "body", "error"),
    [
        ("application/x-www-form-urlencoded", b"foo=bar", GiteaPayloadError),
        ("application/x-www-form-urlencoded", b"", GiteaPayloadError),
        ("application/x-www-form-urlencoded", b"payload=", GiteaPayloadError),
        ("application/x-www-form-urlencoded", b"payload=1&payload=2", GiteaPayloadError),
        ("application/json", b"  ", GiteaPayloadError),
        ("text/plain", b"{}", UnsupportedContentTypeError),
        ("", b"{}", UnsupportedContentTypeError),
        ("multipart/form-data; boundary=x", b"--x--", UnsupportedContentTypeError),
    ],
)
def test_extract_payload_errors(content_type: str, body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error) as raised:
        extract_payload(content_type, body)
    assert isinstance(raised.value, GiteaPayloadError) and isinstance(raised.value, ValueError)
    assert str(raised.value)


def test_event_type_prefers_the_exact_type() -> None:
    assert event_type({"X-Gitea-Event": "pull_request_approved", "X-Gitea-Event-Type": "pull_request_review_approved"}) == (
        "pull_request_review_approved"
    )
    assert event_type({"X-Gitea-Event": "issues"}) == "issues"
    assert event_type({"X-Gitea-Event": "", "X-Gogs-Event": "push"}) == "push"
    assert event_type({"X-GitHub-Event": "status"}) == "status"
    assert event_type({"X-Gitea-Event": ""}) == ""
    assert delivery_id({}) is None
    assert delivery_id({"x-github-delivery": "abc"}) == "abc"


def test_parse_payload() -> None:
    assert parse_payload(ISSUE.payload_bytes)["action"] == "opened"
    for bad in (b"[]", b"nul", b"\xff\xfe", b"[" * 100_000, b'"x"'):
        with pytest.raises(GiteaPayloadError):
            parse_payload(bad)


CONTENT_TYPES = st.one_of(
    st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain", "", "application/x+json"]),
    st.text(max_size=40),
)
HEADER_NAMES = st.one_of(
    st.sampled_from(["X-Gitea-Signature", "x-hub-signature-256", "X-Gogs-Signature", "X-Gitea-Event-Type",
                     "X-Gitea-Event", "X-Gitea-Delivery", "X-GitHub-Event"]),
    st.text(max_size=20),
)  # fmt: skip
HEADER_VALUES = st.one_of(
    st.text(max_size=80),
    st.from_regex(r"(sha256=)?[0-9a-fA-F]{60,68}", fullmatch=True),
)


@settings(max_examples=300)
@given(content_type=CONTENT_TYPES, body=st.binary(max_size=300))
def test_extract_payload_raises_only_payload_errors(content_type: str, body: bytes) -> None:
    try:
        payload = extract_payload(content_type, body)
    except GiteaPayloadError:
        return
    assert isinstance(payload, bytes) and payload.strip()


@settings(max_examples=300)
@given(body=st.binary(max_size=200).map(lambda b: b"payload=" + b + b"&x=1"))
def test_extract_payload_form_fuzz(body: bytes) -> None:
    with contextlib.suppress(GiteaPayloadError):
        extract_payload("application/x-www-form-urlencoded", body)


@settings(max_examples=300)
@given(
    payload=st.binary(max_size=200),
    headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=6),
    secrets=st.lists(st.text(max_size=10), max_size=3),
)
def test_verify_and_headers_never_raise(payload: bytes, headers: dict[str, str], secrets: list[str]) -> None:
    check = verify(payload, headers, secrets)
    assert check.status in SignatureStatus and check.message
    assert check.ok == (check.status is SignatureStatus.OK)
    assert isinstance(event_type(headers), str)
    delivery_id(headers)


@settings(max_examples=200)
@given(payload=st.binary(max_size=200))
def test_parse_payload_raises_only_payload_errors(payload: bytes) -> None:
    with contextlib.suppress(GiteaPayloadError):
        assert isinstance(parse_payload(payload), dict)
