"""Settings: read in one place; a bad value stops start-up with one clear line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.settings import Settings, SettingsError, load_settings
from db.pool import parse_database_url, redact_database_url


def test_defaults_follow_the_contract() -> None:
    settings = Settings()
    assert settings.http_port == 8080
    assert settings.topic_prefix == "aiworker."
    assert settings.max_body_bytes == 10 * 1024 * 1024
    assert settings.topic("agent.events") == "aiworker.agent.events"


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIWORKER_HTTP_PORT", "9001")
    monkeypatch.setenv("AIWORKER_TOPIC_PREFIX", "x.")
    settings = load_settings()
    assert (settings.http_port, settings.topic_prefix) == (9001, "x.")


def test_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIWORKER_HTTP_PORT", "9001")
    assert load_settings(http_port="9002").http_port == 9002


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("http_port", "abc", "AIWORKER_HTTP_PORT='abc'"),
        ("http_port", "70000", "AIWORKER_HTTP_PORT='70000'"),
        ("database_url", "postgres://x/y", "must start with mysql://"),
        ("database_url", "mysql://host:3306/", "must name one database"),
        ("topic_prefix", "a b", "AIWORKER_TOPIC_PREFIX"),
        ("kafka_compression", "brotli", "AIWORKER_KAFKA_COMPRESSION"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_setting(name: str, value: str, expected: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(**{name: value})
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message
    assert f"--{name.replace('_', '-')}" in message


def test_the_command_stops_with_one_line_and_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "migrate", "--http-port", "nope"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "AIWORKER_HTTP_PORT='nope'" in lines[0]


def test_every_setting_has_a_flag() -> None:
    result = subprocess.run([sys.executable, "-m", "app", "web", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for name in Settings.model_fields:
        assert f"--{name.replace('_', '-')}" in result.stdout


def test_the_environment_of_a_child_reads_back_as_the_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    made = load_settings(http_port="9003", create_topics="false", topic_prefix="x.", kafka_session_timeout="6.5")
    for name, value in made.environment().items():
        monkeypatch.setenv(name, value)
    assert load_settings() == made


SECRETS = {
    "service_token": "svc-0f3c-unique",
    "agent_token_key": "agk-9a1e-unique",
    "gitea_secret": "gts-77d2-unique",
    "database_url": "mysql://aiw:dbpw-5b8e-unique@db.example:3306/aiworker",
}


def test_secrets_are_never_printed_but_reach_a_child_in_clear() -> None:
    made = load_settings(**SECRETS)
    for text in (str(made), repr(made), f"{made}", str(made.model_dump()), made.model_dump_json()):
        for secret in (*SECRETS.values(), "dbpw-5b8e-unique"):
            assert secret not in text
    assert made.service_token.get_secret_value() == SECRETS["service_token"]
    env = made.environment()
    assert {env[f"AIWORKER_{k.upper()}"] for k in SECRETS} == set(SECRETS.values())


@pytest.mark.parametrize(
    "url",
    [
        "postgres://aiw:dbpw-5b8e-unique@db.example/aiworker",
        "mysql://aiw:dbpw-5b8e-unique@db.example:3306/",
        "mysql://aiw:dbpw-5b8e-unique@db.example:port/aiworker",
        "mysql://aiw:dbpw/5b8e@unique@db.example/a/b",
        "mysql://aiw:dbpw-5b8e-unique@[::1/aiworker",
        "aiw:dbpw-5b8e-unique@db.example/aiworker",
    ],
)
def test_a_bad_database_url_is_refused_without_its_password(url: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(database_url=url)
    for text in (str(caught.value), repr(caught.value), str(caught.value.__cause__), repr(caught.value.__cause__)):
        assert "dbpw" not in text and "5b8e" not in text
    assert "AIWORKER_DATABASE_URL" in str(caught.value)


def test_a_database_address_does_not_show_its_password() -> None:
    address = parse_database_url(SECRETS["database_url"])
    assert address.password == "dbpw-5b8e-unique"
    assert "dbpw" not in repr(address) and "dbpw" not in str(address)
    assert redact_database_url(SECRETS["database_url"]) == "mysql://aiw:***@db.example:3306/aiworker"
    assert redact_database_url("mysql://root@127.0.0.1:3306/aiworker") == "mysql://root@127.0.0.1:3306/aiworker"


def test_a_driver_error_is_described_by_class_and_number_only() -> None:
    from asyncmy.errors import OperationalError

    from db.pool import describe_error

    text = describe_error(OperationalError(1045, "Access denied for user 'aiw'@'10.0.0.9' (using password: YES)"))
    assert text.startswith("OperationalError 1045 (") and "AIWORKER_DATABASE_URL" in text and "10.0.0.9" not in text
    refused = ConnectionRefusedError(111, "Connect call failed ('db.internal', 3306)")
    assert describe_error(refused) == "ConnectionRefusedError ECONNREFUSED"
    assert describe_error(TimeoutError()) == "TimeoutError"
