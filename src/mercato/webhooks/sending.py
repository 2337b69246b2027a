"""Sending webhook deliveries: the ``webhooks.send`` sweep.

Each pass (:func:`send_due`):

1. takes the due deliveries with a guarded update in one short transaction: ``sending``,
   attempt counted, leased for a while (a sender that dies mid-request leaves a lease that
   runs out, and the delivery is taken again: at least once);
2. outside any transaction, POSTs each event's CloudEvent JSON to its webhook, signed
   (Standard Webhooks: ``webhook-id`` is the delivery id, the same on every retry), after
   checking the URL against the SSRF guard again and connecting to the address that was
   checked; redirects are not followed (a 3xx is a failed attempt);
3. records each outcome in a transaction of its own: 2xx succeeds; anything else is retried
   with exponential backoff and jitter until ``webhook_max_attempts``, then the delivery
   fails. Failed attempts in a row are counted per webhook; at
   ``webhook_disable_after_failures`` the webhook is disabled; a success resets the count.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from prometheus_client import Counter

from mercato import __version__
from mercato.bus import service as bus_service
from mercato.bus.delivery import RetryPolicy, event_from_row
from mercato.bus.scheduler import sweep
from mercato.config import Settings
from mercato.kit import signing, ssrf
from mercato.kit.clock import utcnow
from mercato.kit.db import Database
from mercato.kit.logging import log
from mercato.kit.metrics import REGISTRY
from mercato.models import WebhookAttempt
from mercato.webhooks import repository, service

BATCH = 50
CONCURRENCY = 10
# Kept from a failing receiver's answer, for the delivery history.
RESPONSE_EXCERPT_BYTES = 256
USER_AGENT = f"Mercato-Webhooks/{__version__}"

ATTEMPTS = Counter("mercato_webhook_attempts_total", "Webhook delivery attempts by outcome (succeeded, retry, "
                   "failed, disabled: the attempt that disabled its webhook).", ["outcome"], registry=REGISTRY)


@dataclass(frozen=True)
class Job:
    """One attempt to make, with everything it needs read while the delivery was taken."""

    delivery_id: uuid.UUID
    webhook_id: uuid.UUID
    attempt: int
    url: str
    secrets: tuple[str, ...]
    body: bytes | None  # None: the event is no longer in the outbox


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: int
    at: datetime


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(max_attempts=settings.webhook_max_attempts, base_delay=settings.webhook_retry_base_seconds,
                       max_delay=settings.webhook_retry_max_seconds)


def lease_duration(settings: Settings, batch: int) -> timedelta:
    """Long enough for the whole pass: a taken delivery may wait behind the others of its
    batch (``CONCURRENCY`` at a time, each at most the timeout) before its own attempt."""
    rounds = math.ceil(batch / CONCURRENCY) + 1
    return timedelta(seconds=rounds * settings.webhook_timeout_seconds + 30)


async def send_due(db: Database, settings: Settings, *, now: datetime | None = None, limit: int = BATCH) -> int:
    """Make every due attempt (up to ``limit``); returns how many were made.

    ``now`` decides what is due and when retries are scheduled (tests pass a later time to
    skip a backoff).
    """
    now = now or utcnow()
    jobs = await _take(db, now=now, lease_until=now + lease_duration(settings, limit), limit=limit)
    if not jobs:
        return 0
    gate = asyncio.Semaphore(CONCURRENCY)
    clients: dict[tuple[str, str, int], httpx.AsyncClient] = {}

    async def run(job: Job) -> None:
        async with gate:
            outcome = await attempt(job, settings, clients)
        await _record(db, settings, job, outcome, now=now)

    try:
        await asyncio.gather(*(run(job) for job in jobs))
    finally:
        for client in clients.values():
            await client.aclose()
    return len(jobs)


async def _take(db: Database, *, now: datetime, lease_until: datetime, limit: int) -> list[Job]:
    async with db.transaction() as session:
        taken: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID, int]] = []
        for row in await repository.due(session, now=now, limit=limit):
            # The attempt this sender makes: the guarded take counts it, and only its holder records it.
            number = row.attempts + 1
            if await repository.take(session, row.id, now=now, lease_until=lease_until):
                taken.append((row.id, row.webhook_id, row.event_id, number))
        webhooks = await repository.by_ids(session, list({webhook_id for _, webhook_id, _, _ in taken}))
        jobs = []
        for delivery_id, webhook_id, event_id, number in taken:
            webhook = webhooks[webhook_id]
            event = await bus_service.event(session, event_id)
            body = (json.dumps(event_from_row(event).to_json(), separators=(",", ":"), ensure_ascii=False).encode()
                    if event is not None else None)
            jobs.append(Job(delivery_id=delivery_id, webhook_id=webhook.id, attempt=number, url=webhook.url,
                            secrets=tuple(service.secrets_in_use(webhook, now)), body=body))
    return jobs


def _client(clients: dict[tuple[str, str, int], httpx.AsyncClient], target: ssrf.Target,
            settings: Settings) -> httpx.AsyncClient:
    """One client per origin *name*: pooled connections are keyed by the (pinned) address,
    and two names on one address must not share a TLS connection made for the other."""
    key = (target.url.scheme, target.host, target.port)
    client = clients.get(key)
    if client is None:
        client = httpx.AsyncClient(follow_redirects=False, trust_env=False,
                                   timeout=httpx.Timeout(settings.webhook_timeout_seconds),
                                   limits=httpx.Limits(max_connections=CONCURRENCY))
        clients[key] = client
    return client


async def attempt(job: Job, settings: Settings, clients: dict[tuple[str, str, int], httpx.AsyncClient]) -> Outcome:
    """POST the delivery once. Never raises for the receiver's or the network's failures."""
    started = time.monotonic()
    status_code: int | None = None
    try:
        if job.body is None:
            raise LookupError("the event is no longer in the outbox")
        async with asyncio.timeout(settings.webhook_timeout_seconds):
            target = await service.check_url(settings, job.url)
            # identity: the excerpt kept of an error answer is read raw, never decompressed.
            headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "Accept-Encoding": "identity",
                       **signing.headers(job.secrets, str(job.delivery_id), job.body)}
            answer = await _post(_client(clients, target, settings), target, headers, job.body)
        status_code = answer.status_code
        if 200 <= status_code < 300:
            return _outcome(True, status_code, None, started)
        return _outcome(False, status_code, _describe(answer), started)
    except ssrf.UrlNotAllowed as exc:
        return _outcome(False, None, f"refused: {exc.detail}", started)
    except TimeoutError:
        return _outcome(False, status_code, f"timed out after {settings.webhook_timeout_seconds:g} s", started)
    except (httpx.HTTPError, OSError, LookupError) as exc:
        return _outcome(False, status_code, f"{type(exc).__name__}: {exc}".rstrip(": "), started)


@dataclass(frozen=True)
class _Answer:
    status_code: int
    location: str | None
    excerpt: str


async def _post(client: httpx.AsyncClient, target: ssrf.Target, headers: dict[str, str], body: bytes) -> _Answer:
    response = await target.send(client, "POST", headers=headers, content=body)
    try:
        excerpt = b""
        async for chunk in response.aiter_raw():
            excerpt += chunk
            if len(excerpt) >= RESPONSE_EXCERPT_BYTES:
                break
    finally:
        await response.aclose()
    return _Answer(response.status_code, response.headers.get("location"),
                   excerpt[:RESPONSE_EXCERPT_BYTES].decode("utf-8", "replace"))


def _describe(answer: _Answer) -> str:
    if 300 <= answer.status_code < 400:
        where = f" to {answer.location}" if answer.location else ""
        return f"HTTP {answer.status_code}: redirect{where} not followed"
    return f"HTTP {answer.status_code}" + (f": {answer.excerpt.strip()}" if answer.excerpt.strip() else "")


def _outcome(ok: bool, status_code: int | None, error: str | None, started: float) -> Outcome:
    return Outcome(ok=ok, status_code=status_code, error=error,
                   duration_ms=int((time.monotonic() - started) * 1000), at=utcnow())


async def _record(db: Database, settings: Settings, job: Job, outcome: Outcome, *, now: datetime) -> None:
    policy = retry_policy(settings)
    if outcome.ok:
        state, next_at = "succeeded", None
    elif job.attempt >= policy.max_attempts or job.body is None:
        state, next_at = "failed", None
    else:
        state, next_at = "pending", max(now, outcome.at) + policy.delay(job.attempt)
    disabled = False
    try:
        async with db.transaction() as session:
            if not await repository.finish_attempt(
                    session, job.delivery_id, attempt=job.attempt, state=state, next_attempt_at=next_at,
                    status_code=outcome.status_code, error=outcome.error, duration_ms=outcome.duration_ms,
                    at=outcome.at):
                return  # our lease ran out and another sender took the delivery over, or it was deleted
            await repository.add_attempt(session, WebhookAttempt(
                delivery_id=job.delivery_id, attempt=job.attempt, at=outcome.at, status_code=outcome.status_code,
                error=outcome.error, duration_ms=outcome.duration_ms))
            if outcome.ok:
                await repository.reset_failures(session, job.webhook_id)
            else:
                await repository.count_failure(session, job.webhook_id)
                disabled = await repository.disable_if_failing(
                    session, job.webhook_id, threshold=settings.webhook_disable_after_failures, at=outcome.at,
                    reason=(f"Disabled after {settings.webhook_disable_after_failures} failed attempts in a row; "
                            f"the last: {outcome.error}")[:2000])
    except Exception:  # the database is failing: the lease runs out and the attempt is made again
        log.exception("webhooks: could not record an attempt", delivery_id=str(job.delivery_id))
        return
    ATTEMPTS.labels("disabled" if disabled else "retry" if state == "pending" else state).inc()
    if not outcome.ok:
        log.warning("webhooks: delivery attempt failed", webhook_id=str(job.webhook_id),
                    delivery_id=str(job.delivery_id), attempt=job.attempt, error=outcome.error, state=state)
    if disabled:
        log.warning("webhooks: webhook disabled after failures in a row", webhook_id=str(job.webhook_id))


@sweep("webhooks.send", every=1.0)
async def send_sweep(bus) -> None:  # type: ignore[no-untyped-def]
    """Runs in the process holding the sweep's lease (the bus's scheduler)."""
    while await send_due(bus.db, bus.settings) >= BATCH:
        pass


@sweep("webhooks.purge", every=3600.0)
async def purge_sweep(bus) -> None:  # type: ignore[no-untyped-def]
    async with bus.db.transaction() as session:
        await service.purge_finished(session, settings=bus.settings)
