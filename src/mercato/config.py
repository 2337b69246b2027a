"""Settings, read from the environment (prefix ``MERCATO_``) and an optional ``.env``.

Everything that switches the store between the embedded default and the scaled form is
here, so that switching is configuration only.
"""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class PasswordHashParameters:
    """Argon2id parameters. Production follows OWASP ASVS (m = 19 MiB, t = 2, p = 1)."""

    PRODUCTION = {"memory_cost": 19 * 1024, "time_cost": 2, "parallelism": 1}
    # Only for test runs (MERCATO_TESTING=1): hashing at ASVS cost would dominate the suite.
    TESTING = {"memory_cost": 1024, "time_cost": 1, "parallelism": 1}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MERCATO_", env_file=".env", extra="ignore")

    data_dir: Path = Path("./mercato-data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL; default: SQLite file in the data dir."
    )
    database_read_url: str | None = Field(default=None, description="Optional read replica (PostgreSQL).")
    redis_url: str | None = None
    redis_namespace: str = Field(default="mercato", description="Prefix of every Redis key this store uses.")
    broker_url: str | None = None
    secret_key: str | None = Field(default=None, description="JWT signing key; default: generated into the data dir.")

    public_url: str = "http://127.0.0.1:8000"
    jwt_issuer: str = "mercato"
    jwt_audience: str = "mercato-api"
    access_token_minutes: int = 10
    refresh_token_days: int = 7

    login_attempts: int = 10
    login_window_seconds: int = 300
    refresh_attempts: int = 60
    refresh_window_seconds: int = 300

    max_body_bytes: int = 1024 * 1024
    idempotency_retention_hours: int = 24
    idempotency_lease_seconds: int = 60

    # the bus (see docs/events.md)
    bus_queue: str = Field(default="mercato", description="Broker queue/stream name.")
    bus_max_attempts: int = Field(default=8, ge=1, description="Attempts before a delivery becomes a dead letter.")
    bus_retry_base_seconds: float = Field(default=0.5, gt=0)
    bus_retry_max_seconds: float = Field(default=300.0, gt=0)
    bus_redelivery_timeout_seconds: float = Field(default=30.0, gt=0, description=(
        "A delivery handed to the broker but not processed after this is re-driven from the database."))
    bus_sweep_interval_seconds: float = Field(default=1.0, gt=0)
    bus_relay_poll_seconds: float = Field(default=0.2, gt=0)

    # outgoing webhooks (see docs/webhooks.md)
    webhook_max_attempts: int = Field(default=8, ge=1, description=(
        "Attempts per webhook delivery before it is marked failed."))
    webhook_disable_after_failures: int = Field(default=10, ge=1, description=(
        "Consecutive failed attempts (any of its deliveries) after which a webhook is disabled."))
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60, description=(
        "Whole-request timeout of one delivery attempt (DNS, connect, send, response headers)."))
    webhook_retry_base_seconds: float = Field(default=30.0, gt=0, description=(
        "First retry delay; doubles per attempt, with jitter."))
    webhook_retry_max_seconds: float = Field(default=6 * 3600.0, gt=0, description="Longest retry delay.")
    webhook_limit: int = Field(default=20, ge=1, description=(
        "Webhooks per publisher (and store-wide webhooks without a publisher)."))
    webhook_delivery_retention_days: int = Field(default=30, ge=1, description=(
        "Finished deliveries (and their attempts) older than this are purged."))
    outbound_allowed_hosts: list[str] = Field(default_factory=list, description=(
        "Hosts (names or IP literals, matched exactly, case-insensitively) that the SSRF guard lets "
        "through even when they resolve to loopback or private addresses: a local test receiver or an "
        "in-cluster service. This is the admin allowlist of QUALITY I7, kept as a setting until "
        "runtime-editable settings (O4) exist. JSON list in the environment: "
        "MERCATO_OUTBOUND_ALLOWED_HOSTS='[\"hooks.internal\"]'."))

    live_heartbeat_seconds: float = Field(default=15.0, gt=0, description="SSE heartbeat interval.")

    log_level: str = "INFO"
    log_json: bool = False
    testing: bool = False

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'mercato.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def password_hash_parameters(self) -> dict[str, int]:
        return PasswordHashParameters.TESTING if self.testing else PasswordHashParameters.PRODUCTION

    @cached_property
    def resolved_secret_key(self) -> str:
        """The configured key, or one generated once and kept in the data dir."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret.key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        try:  # O_EXCL: two processes starting at once must end up with the same key
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
        return key


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
