"""Every setting of the service, read in one place: environment (prefix AIWORKER_) or flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app import AiworkerError
from db.pool import DatabaseUrlError, parse_database_url, redact_database_url


class SettingsError(AiworkerError):
    """A setting has a bad value; the message is one line naming it and what to do."""


class Settings(BaseSettings):
    """Configuration of web, worker and dev. Field names are the env names without the prefix."""

    model_config = SettingsConfigDict(env_prefix="AIWORKER_", extra="forbid", frozen=True)

    kafka_bootstrap: str = Field("", description="Kafka bootstrap servers host:port[,…]; empty: embedded broker (dev)")
    database_url: SecretStr = Field(
        SecretStr("mysql://root@127.0.0.1:3306/aiworker"), description="mysql://user:pass@host:port/db (secret: never printed)"
    )
    gitea_secret: SecretStr = Field(
        SecretStr(""), description="Gitea webhook HMAC secret (a project row may carry its own; secret: never printed)"
    )
    gitea_insecure: bool = Field(False, description="accept unsigned Gitea webhooks when no secret applies (dev only)")
    agent_token_key: SecretStr = Field(
        SecretStr(""),
        description="key of agent tokens, each `<agent_id>.<hex HMAC-SHA256(key, agent_id)>` (secret: never printed)",
    )
    service_token: SecretStr = Field(
        SecretStr(""), description="bearer token of the backend and deploy pipeline (every event type; secret: never printed)"
    )
    console_token: SecretStr = Field(
        SecretStr(""),
        description="web: token of the operator console under /console, entered once on its login form "
        "(separate from SERVICE_TOKEN); empty: the console is off (secret: never printed)",
    )
    console_session_seconds: int = Field(
        8 * 3600, ge=60, le=30 * 86400, description="web: how long a console login lasts (its signed session cookie), s"
    )
    http_host: str = Field("0.0.0.0", description="address the HTTP server binds")
    http_port: int = Field(8080, ge=1, le=65535, description="port of the HTTP server")
    topic_prefix: str = Field("aiworker.", description="prefix of every topic name")
    topic_partitions: int = Field(8, ge=1, le=1024, description="partitions of the topics this service creates")
    topic_replication: int = Field(1, ge=1, le=16, description="replication factor of created topics")
    create_topics: bool = Field(True, description="create missing topics at start-up (off when Strimzi owns them)")
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="largest accepted request body, bytes")
    unauthenticated_bodies: int = Field(
        32,
        ge=1,
        le=10_000,
        description="web: request bodies read and checked at once before their sender is known "
        "(Gitea deliveries, whose signature needs the body), per process; bodies over 256 KiB get 1/32 as many",
    )
    body_read_seconds: float = Field(
        3.0, gt=0, le=60, description="web: longest wait for a turn to read a body, and then for the body itself, s"
    )
    max_event_bytes: int = Field(
        1024 * 1024, ge=256 * 1024, le=64 * 1024 * 1024,
        description="largest record one event, log batch or Gitea delivery makes on an input topic, bytes (bigger: 413); "
        "every topic's max.message.bytes must be at least this + 64 KiB, checked at start-up",
    )  # fmt: skip
    max_events_per_request: int = Field(
        10_000, ge=1, le=1_000_000, description="POST /events: most events in one request (more: 413, nothing accepted)"
    )
    agent_events_per_second: float = Field(50.0, gt=0, description="POST /events: events per second of one agent token")
    agent_events_burst: int = Field(10_000, ge=1, description="POST /events: events one agent token may send at once")
    agent_bytes_per_second: float = Field(512 * 1024, gt=0, description="POST /events: body bytes per second of one agent token")
    agent_bytes_burst: int = Field(
        10 * 1024 * 1024, ge=1024, description="POST /events: body bytes one agent token may send at once"
    )
    service_events_per_second: float = Field(5_000.0, gt=0, description="POST /events: events per second of the service token")
    service_events_burst: int = Field(100_000, ge=1, description="POST /events: events the service token may send at once")
    service_bytes_per_second: float = Field(
        32 * 1024 * 1024, gt=0, description="POST /events: body bytes per second of the service token"
    )
    service_bytes_burst: int = Field(
        128 * 1024 * 1024, ge=1024, description="POST /events: body bytes the service token may send at once"
    )
    kafka_idempotence: bool = Field(False, description="idempotent producer (real Kafka only; Tansu lacks it)")
    kafka_compression: str = Field("none", pattern="^(none|gzip|snappy|lz4|zstd)$", description="producer compression")
    kafka_linger_ms: int = Field(0, ge=0, le=10_000, description="producer linger, ms")
    kafka_web_producers: int = Field(
        1, ge=1, le=64,
        description="Kafka producers of each web process (a record's partition picks one: its order is kept); 4 in "
        "deploy/k8s (bench ingest: +31 % requests/s): the dev broker, Tansu, restarted empty while several are "
        "connected, recreates topics under them more often",
    )  # fmt: skip
    kafka_session_timeout: float = Field(10.0, gt=0, le=300, description="consumer group session timeout, s")
    kafka_fetch_max_wait_ms: int = Field(
        100,
        ge=1,
        le=10_000,
        description="longest a consumer fetch waits for data, ms: Kafka answers as soon as data arrives; Tansu only at the "
        "deadline, so each stage waits up to this there (20 cost the fleet bench a sixth more CPU than 100)",
    )
    spool_dir: Path = Field(Path("var/spool"), description="local spool of events accepted while the broker is down")
    spool_max_bytes: int = Field(256 * 1024 * 1024, ge=0, description="spool bound, bytes; 0 disables the spool")
    kafka_send_timeout: float = Field(
        1.5, gt=0, le=60, description="how long a request waits for the broker before spooling, s (Gitea waits 5 s)"
    )
    gitea_secret_rotation_seconds: int = Field(
        86400, ge=0, description="after a project's webhook secret is rotated, the previous one is accepted this long, s"
    )
    gitea_secret_cache_seconds: float = Field(30.0, ge=0, le=3600, description="how long project webhook secrets are cached, s")
    worker_id: str = Field(
        "aiworker-events", min_length=1, max_length=90, description="Faust app id (consumer group) of the fold workers"
    )
    worker_batch_size: int = Field(
        100,
        ge=1,
        le=100_000,
        description="records folded per database transaction (a transaction holds its agents' and tasks' rows until it "
        "commits, so larger batches make the workers wait longer for each other: 500 doubled the fleet bench's lag)",
    )
    worker_batch_seconds: float = Field(0.02, gt=0, le=60, description="longest wait to fill a fold batch, s")
    worker_batch_bytes: int = Field(
        16 * 1024 * 1024, ge=1024 * 1024, le=1024 * 1024 * 1024,
        description="records folded per database transaction are also bounded by their bytes (a record bigger than this "
        "is folded alone)",
    )  # fmt: skip
    outbox_batch_size: int = Field(500, ge=1, le=100_000, description="outbox rows published per relay round")
    agent_offline_seconds: int = Field(60, ge=1, description="heartbeat silence after which an agent goes offline")
    heartbeat_granularity_seconds: int = Field(
        15,
        ge=0,
        le=3600,
        description="a heartbeat that only moves its agent's last_heartbeat and last_seen_at forward by less than "
        "this (status and task unchanged) does not rewrite the row; the sweeper waits AGENT_OFFLINE_SECONDS plus "
        "this, so an agent goes offline that much later at most, never earlier (0: every heartbeat writes)",
    )
    agent_clock_lag_seconds: int = Field(
        300,
        ge=0,
        description="fold lag behind ingest tolerated before the worker's wall clock judges agents whose "
        "agent.events partition fell silent (liveness is by the ingest clock)",
    )
    park_seconds: int = Field(3600, ge=1, description="longest an event waits for a missing row before the dlq, s")
    trace_retention_seconds: int = Field(
        7 * 86400, ge=0, description="how long the fold's record of each event's outcome and transitions is kept "
        "for `trace`, s (deleted in batches by the sweeper); 0: not recorded",
    )  # fmt: skip
    log_level: str = Field(
        "info", pattern="^(debug|info|warning|error)$",
        description="log level (debug also shows Faust's and aiokafka's internals, WARNING and up otherwise)",
    )  # fmt: skip
    log_format: str = Field("text", pattern="^(text|json)$", description="log lines as text, or JSON objects (one per line)")
    worker_http_port: int = Field(8081, ge=0, le=65535, description="worker: port of /healthz, /readyz, /metrics; 0: none")
    worker_stall_seconds: float = Field(
        180.0, gt=0, le=86400,
        description="worker: /healthz fails when the fold has lag and folded nothing for this long, s (retries count as nothing)",
    )  # fmt: skip
    k8s_watch_http_port: int = Field(8082, ge=0, le=65535, description="k8s-watch: port of /healthz, /readyz, /metrics; 0: none")
    k8s_api_url: str = Field("", description="k8s-watch: API server URL; empty: in-cluster service account, else ~/.kube/config")
    k8s_agent_namespace: str = Field("aiworker-agents", description="k8s-watch: namespace of the agent pods")
    k8s_agent_selector: str = Field(
        "app.kubernetes.io/component=aiworker-agent", description="k8s-watch: label selector of agent pods"
    )
    k8s_deployment_namespaces: str = Field("", description="k8s-watch: comma-separated project/preview namespaces; empty: all")
    k8s_deployment_selector: str = Field("aiworker.dev/project-id", description="k8s-watch: label selector of app Deployments")
    k8s_backoff_max: float = Field(30.0, gt=0, le=600, description="k8s-watch: longest reconnect backoff, s")
    gitea_url: str = Field("", description="reconcile: base URL of Gitea (https://git.example.com); empty: reconcile is off")
    gitea_token: SecretStr = Field(
        SecretStr(""),
        description="reconcile: Gitea API token with read-only repository access, sent as `Authorization: token` "
        "(secret: never printed)",
    )
    gitea_timeout: float = Field(10.0, gt=0, le=300, description="reconcile: timeout of one Gitea API request, s")
    reconcile_seconds: int = Field(300, ge=10, le=86_400, description="reconcile: pause between two passes over every project, s")
    fault_event_id: str = Field(
        "", description="tests only: the fold raises an error when it handles the event with this id (empty: never)"
    )
    web_url: str = Field("", description="demo: base URL of the web process; empty: http://127.0.0.1:<HTTP_PORT>")

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr) -> SecretStr:
        try:
            parse_database_url(value.get_secret_value())
        except DatabaseUrlError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("gitea_url")
    @classmethod
    def _check_gitea_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be empty or an http(s):// URL of Gitea, without /api/v1")
        return value.rstrip("/").removesuffix("/api/v1")

    @field_validator("topic_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if any(ch not in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-" for ch in value):
            raise ValueError("may hold only letters, digits, '.', '_' and '-'")
        return value

    def environment(self) -> dict[str, str]:
        """These settings as AIWORKER_* variables (secrets in clear), for a child process that must read exactly them."""
        return {f"AIWORKER_{name.upper()}": _env_text(value) for name, value in self.model_dump().items()}

    def topic(self, name: str) -> str:
        """The full name of one of the service's topics (e.g. 'agent.events')."""
        return f"{self.topic_prefix}{name}"


def _env_text(value: Any) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return str(value).lower() if isinstance(value, bool) else str(value)


def is_secret(name: str) -> bool:
    """Whether the setting `name` holds a secret (never printed: not in errors, logs or help)."""
    return Settings.model_fields[name].annotation is SecretStr


def load_settings(**overrides: Any) -> Settings:
    """Read the settings (overrides from flags win over the environment) or raise one clear line."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "?"
        value = _shown(name, error.get("input"))
        raise SettingsError(
            f"invalid setting AIWORKER_{name.upper()}={value}: {error['msg']}"
            f" (set it in the environment or with --{name.replace('_', '-')})"
        ) from None  # pydantic's error repeats the input, which may be a secret


def _shown(name: str, value: Any) -> str:
    """A bad setting's value as an error may show it: a secret's never (a database URL without its password)."""
    if name == "database_url" and isinstance(value, str):
        return repr(redact_database_url(value))
    if name in Settings.model_fields and is_secret(name):
        return "<secret, not shown>"
    return repr(value)
