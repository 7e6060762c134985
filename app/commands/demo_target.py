"""Where `aiworker-events demo` (app/commands/demo.py) finds the running system: its URL, tokens and database, from the
settings or, where they are left at their defaults, from what `aiworker-events dev` wrote to var/dev.env."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from app import AiworkerError
from app.commands.dev import DEV_ENV
from app.settings import Settings


class DemoError(AiworkerError):
    """The demo cannot reach the running system."""


def dev_values(path: Path = DEV_ENV) -> dict[str, str]:
    """The settings `dev` wrote (KEY=value lines), or nothing when there is no file."""
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {k.strip().removeprefix("AIWORKER_").lower(): v.strip() for k, v in pairs}


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    service_token: str = field(repr=False)
    agent_key: str = field(repr=False)
    gitea_secret: str = field(repr=False)
    database_url: str = field(repr=False)

    @classmethod
    def resolve(cls, settings: Settings, dev: dict[str, str]) -> Target:
        def pick(name: str) -> str:
            value = _text(getattr(settings, name))
            default = _text(Settings.model_fields[name].default)
            return dev[name] if name in dev and (not value or value == default) else value

        url = pick("web_url") or f"http://127.0.0.1:{settings.http_port}"
        target = cls(url.rstrip("/"), pick("service_token"), pick("agent_token_key"), pick("gitea_secret"), pick("database_url"))
        if not target.service_token or not target.agent_key:
            raise DemoError(
                "no service token or agent token key: start the system with `make run` (it writes var/dev.env) "
                "or set AIWORKER_SERVICE_TOKEN and AIWORKER_AGENT_TOKEN_KEY as the running system has them"
            )
        return target


def _text(value: object) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)
