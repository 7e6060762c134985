"""Settings: read in one place; a bad value stops start-up with one clear line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.settings import Settings, SettingsError, load_settings


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
