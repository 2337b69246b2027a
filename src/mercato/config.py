"""Settings, read from the environment (prefix ``MERCATO_``) and an optional ``.env``.

Everything that switches the store between the embedded default and the scaled form is
here, so that switching is configuration only.
"""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
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

    public_url: str = Field(default="http://127.0.0.1:8000", description=(
        "The store's address as buyers reach it (payment links, e-mails). Unset: `mercato serve` "
        "derives it from the address it binds (--host, --port)."))
    store_name: str = Field(default="Mercato", max_length=100, description="Shown on receipts and e-mails.")
    jwt_issuer: str = "mercato"
    jwt_audience: str = "mercato-api"
    access_token_minutes: int = 10
    refresh_token_days: int = 7

    login_attempts: int = 10
    login_window_seconds: int = 300
    refresh_attempts: int = 60
    refresh_window_seconds: int = 300

    max_body_bytes: int = 1024 * 1024
    trusted_proxies: str = Field(default="127.0.0.1", description=(
        "Comma-separated addresses or networks (CIDR) of the reverse proxies / load balancers in front of "
        "the store: only a connection from one of them may set the client's address with X-Forwarded-For "
        "(and the scheme with X-Forwarded-Proto). '*' trusts every peer (only when nothing else can reach "
        "the store); an empty value trusts none."))
    request_timeout_seconds: float = Field(default=30.0, ge=0, description=(
        "Budget of one request up to the first byte of its answer: past it the request is cancelled "
        "(nothing is changed) and answered 503 with Retry-After. 0 turns it off. A long poll's `wait` is "
        "added to it; package uploads and live event streams are exempt; a download counts until its first byte."))
    database_statement_timeout_seconds: float = Field(default=10.0, ge=0, description=(
        "Longest a single database statement may run, lock waits included (PostgreSQL "
        "`statement_timeout`; a database that does not answer at all is given up 2 s later). A request "
        "that hits it is answered 503 with Retry-After. 0: no limit. PostgreSQL only: SQLite waits up to "
        "30 s for its write lock, and requests are bounded by `request_timeout_seconds`."))
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
    bus_observer_poll_seconds: float = Field(default=5.0, gt=0, description=(
        "How often an observer looks for events relayed by another process (the relay of its own "
        "process wakes it at once)."))
    bus_worker_concurrency: int = Field(default=4, ge=1, le=200, description=(
        "Deliveries a process runs at once. Bounded so a backlog (after `serve --demo`, or a "
        "burst of writes) cannot take every database connection from the requests."))

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

    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$", description=(
        "The store currency (ISO 4217); every price and balance is in its minor units."))
    catalog_cache_seconds: float = Field(default=30.0, ge=0, description=(
        "How long a published listing's rendered detail is served from cache; edits evict it at once, "
        "counters (downloads, installs) may lag by up to this."))
    catalog_document_seconds: float = Field(default=300.0, ge=0, description=(
        "How long a stored listing document (the detail's read model in the database) is served before "
        "it is rendered again. Every change that shows clears it at once (database triggers); only the "
        "download and install counters and the order of related listings may lag by up to this. 0: never "
        "served from stored documents."))

    # artifacts and packages (see docs/packages.md and docs/storage-and-signing.md)
    storage_url: str | None = Field(default=None, description=(
        "Where package archives live: `file:///path` or `s3://bucket/prefix?endpoint_url=...&region=...`; "
        "default: the `artifacts` folder of the data dir."))
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    signing_key: str | None = Field(default=None, description=(
        "The store's Ed25519 signing key (base64 of the 32-byte seed); default: generated into the data dir. "
        "Every process of one store must use the same key."))
    signing_retired_public_keys: list[str] = Field(default_factory=list, description=(
        "Public keys (base64) of earlier signing keys, still published so older signatures verify."))
    package_max_bytes: int = Field(default=512 * 1024 * 1024, ge=1, description="Largest package archive accepted.")
    package_max_unpacked_bytes: int = Field(default=2 * 1024 * 1024 * 1024, ge=1,
                                            description="Largest total unpacked size of a package.")
    package_max_members: int = Field(default=10_000, ge=1, description="Most files and folders in one package.")
    package_bomb_threshold_bytes: int = Field(default=64 * 1024 * 1024, ge=1, description=(
        "Unpacked size beyond which the compression ratio is checked."))
    package_max_ratio: float = Field(default=50.0, gt=1, description=(
        "Highest unpacked/packed ratio accepted beyond the bomb threshold."))
    review_claim_timeout_seconds: int = Field(default=2 * 3600, ge=60, description=(
        "A review claim older than this goes back to the queue."))

    live_heartbeat_seconds: float = Field(default=15.0, gt=0, description="SSE heartbeat interval.")

    # notifications by e-mail (see docs/library-ratings-notifications.md, "E-mail")
    smtp_host: str | None = Field(default=None, description=(
        "SMTP server that sends notification e-mails (a relay or a provider's submission host); "
        "unset: no e-mail is sent."))
    smtp_port: int = Field(default=587, ge=1, le=65535, description=(
        "SMTP port: 587 for submission with STARTTLS, 465 for implicit TLS, 25 for a local relay."))
    smtp_username: str | None = Field(default=None, description="SMTP login; unset: no login.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password of `smtp_username`.")
    smtp_starttls: bool = Field(default=True, description=(
        "Upgrade the connection with STARTTLS; when on, a server that does not offer it fails the send "
        "(no silent fallback to plain text). Ignored with `smtp_tls`."))
    smtp_tls: bool = Field(default=False, description=(
        "Implicit TLS from the first byte (usually port 465); takes precedence over `smtp_starttls`."))
    smtp_from: str = Field(default="Mercato <no-reply@localhost>", pattern=r"^[^\r\n]+@[^\r\n@]+$", description=(
        "`From` of every notification e-mail and its envelope sender; its domain is also the domain "
        "of the messages' `Message-ID`."))
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=120, description=(
        "Whole-exchange timeout of sending one message (connect, TLS, login, data); a timeout is a "
        "failed attempt that the bus retries."))

    # provider payments (see docs/payments.md)
    payment_provider: Literal["sandbox", "stripe"] = Field(default="sandbox", description=(
        "Provider of new payments (top-ups, order shortfalls): `sandbox` (built in, offline) or `stripe` "
        "(needs `stripe_secret_key` and `stripe_webhook_secret`)."))
    payment_poll_max_interval_seconds: float = Field(default=300.0, gt=0, description=(
        "Longest pause of the payment poller's exponential backoff between two questions to the provider."))
    sandbox_payments_enabled: bool = Field(default=True, description=(
        "Serve the sandbox provider (pay page, provider API, test cards). Turn off in production."))
    sandbox_webhook_secret: SecretStr | None = Field(default=None, description=(
        "HMAC secret of the sandbox's signed webhooks; default: generated into the data dir."))
    sandbox_confirm_delay_seconds: float = Field(default=3.0, ge=0, le=3600, description=(
        "How long the sandbox's delayed test card (4000000000000077) takes to confirm."))
    sandbox_webhook_drop_probability: float = Field(default=0.0, ge=0, le=1, description=(
        "Failure injection: chance that the sandbox never delivers a webhook (the poller must notice)."))
    sandbox_webhook_duplicate_probability: float = Field(default=0.0, ge=0, le=1, description=(
        "Failure injection: chance that the sandbox delivers a webhook twice."))
    sandbox_webhook_late_probability: float = Field(default=0.0, ge=0, le=1, description=(
        "Failure injection: chance that the sandbox delivers a webhook late (out of order)."))
    sandbox_webhook_late_seconds: float = Field(default=5.0, ge=0, le=3600, description=(
        "How late a late sandbox webhook arrives."))
    stripe_secret_key: SecretStr | None = Field(default=None, description=(
        "Stripe API secret key (sk_live_… / sk_test_…); with `stripe_webhook_secret` enables Stripe."))
    stripe_webhook_secret: SecretStr | None = Field(default=None, description=(
        "Signing secret (whsec_…) of the Stripe webhook endpoint /api/v1/payments/webhooks/stripe."))

    # installs on instances (I1–I6, docs/installs.md)
    installs_status_sweep_seconds: float = Field(default=120.0, gt=0, description=(
        "How often status correction compares reported inventories with the records and fails "
        "tasks past their deadline (I5)."))
    installs_task_deadline_seconds: int = Field(default=900, ge=10, description=(
        "A dispatched or running task must report (progress or result) within this many seconds; "
        "each report extends it. Past it, status correction fails the task."))
    installs_task_max_attempts: int = Field(default=3, ge=1, le=20, description=(
        "Attempts a task may take: retrying a failed task adds one, up to this."))
    installs_heartbeat_stale_seconds: int = Field(default=300, ge=10, description=(
        "An inventory older than this is not trusted for status correction (the agent is away)."))

    # operation history and incremental sync (O2, S1, S2; docs/history.md, docs/sync.md)
    history_retention_days: int = Field(default=30, ge=1, description=(
        "How long operation history entries are kept (GET /me/history); a daily sweep deletes older ones."))
    sync_tombstone_retention_days: int = Field(default=30, ge=1, description=(
        "How long the catalog change feed keeps tombstones of removed listings; a client whose cursor "
        "is older than the purged tombstones gets `reset` with a full snapshot."))
    sync_page_limit: int = Field(default=500, ge=1, le=5000, description=(
        "Most changes in one GET /sync/catalog answer (clients ask for fewer with `limit`)."))
    sync_head_cache_seconds: float = Field(default=2.0, ge=0, description=(
        "How long the feed's head position is cached for unchanged polls (304); a recorded change "
        "evicts it at once in this process and in a shared cache."))

    # market sources (O6, docs/market-sources.md)
    market_sync_interval_seconds: float = Field(default=300.0, gt=0, description=(
        "How often each enabled market source's sync feed is polled; a failing source waits "
        "min(2^failures x this, 1 h) before its next attempt."))
    market_timeout_seconds: float = Field(default=10.0, gt=0, le=120, description=(
        "Whole-request timeout of one sync feed request to a market source."))
    market_max_response_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, description=(
        "Largest sync feed answer read from a market source; a larger one fails the attempt."))
    market_max_pages: int = Field(default=20, ge=1, le=1000, description=(
        "Most feed pages fetched from one source in one sync (the rest come on the next one)."))

    metrics_port: int | None = Field(default=None, ge=0, le=65535, description=(
        "`mercato worker` and `mercato scheduler` serve GET /metrics and GET /healthz on this port (they "
        "have no API); unset: none. `mercato serve` has both on its own port."))
    metrics_host: str = Field(default="0.0.0.0", description="Interface of the metrics port.")

    log_level: str = "INFO"
    log_json: bool = False
    access_log: Literal["all", "problems", "off"] = Field(default="problems", description=(
        "Access log lines: every request (all), answers >= 400 and slow requests (problems), or none "
        "(off). Every request is counted in /metrics whatever the mode."))
    access_log_slow_ms: float = Field(default=10_000.0, gt=0, description=(
        "With access_log=problems, requests slower than this are logged too."))
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


def bound_url(host: str, port: int) -> str:
    """The URL of a server bound to ``host:port``; a wildcard address is reached on loopback."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def with_bound_address(settings: Settings, host: str, port: int) -> Settings:
    """``public_url`` from the bound address unless it was configured (MERCATO_PUBLIC_URL)."""
    if "public_url" in settings.model_fields_set:
        return settings
    return settings.model_copy(update={"public_url": bound_url(host, port)})


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
