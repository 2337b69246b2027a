"""Webhooks: subscriptions of publishers and admins, and the fan-out of events into deliveries.

Who may do what (``webhook:manage``):

- ``any`` (marketplace and super admins): every webhook; store-wide webhooks (no publisher)
  that receive every event of their types.
- ``own`` (developers): webhooks of the publishers they own; such a webhook receives only
  the events whose outbox ``publisher_id`` is that publisher's. Others' webhooks are 404.

URLs pass the SSRF guard (``kit/ssrf.py``) here, at creation and change, and again at every
send. The check resolves DNS, so it runs before the first query: on SQLite the first query
of a write session takes the single writer, and a slow resolver must not hold it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.permissions import Condition, Permission
from mercato.access.principal import Principal
from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.bus.events import EVENT_TYPES, CloudEvent
from mercato.bus.outbox import publish
from mercato.bus.registry import ALL_EVENTS
from mercato.config import Settings
from mercato.kit import signing, ssrf
from mercato.kit.clock import utcnow
from mercato.kit.errors import Forbidden, found_or_raise
from mercato.models import Webhook, WebhookAttempt, WebhookDelivery
from mercato.publishers import service as publishers
from mercato.webhooks import repository
from mercato.webhooks.errors import UnknownEventTypes, WebhookLimitReached, WebhookNotFound
from mercato.webhooks.events import TEST_EVENT, WebhookTest

# How long the previous secret keeps signing after a rotation.
ROTATION_OVERLAP = timedelta(hours=24)


# --- who sees what -------------------------------------------------------------------------------

async def _scope(session: AsyncSession, actor: Principal) -> tuple[bool, list[uuid.UUID]]:
    """(sees everything, ids of the publishers whose webhooks the caller sees)."""
    if actor.condition_for(Permission.webhook_manage) is Condition.any:
        return True, []
    return False, await publishers.publisher_ids_for(session, actor, Permission.webhook_manage, owners_only=True)


async def get_visible(session: AsyncSession, actor: Principal, webhook_id: uuid.UUID) -> Webhook:
    everything, publisher_ids = await _scope(session, actor)
    webhook = await repository.visible(session, webhook_id, everything=everything, publisher_ids=publisher_ids)
    return found_or_raise(webhook, WebhookNotFound, f"There is no webhook {webhook_id}.")


async def search(session: AsyncSession, actor: Principal, *, publisher_slug: str | None,
                 after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[Webhook]:
    everything, publisher_ids = await _scope(session, actor)
    publisher_id = (await publishers.get(session, publisher_slug)).id if publisher_slug else None
    return await repository.search_visible(session, everything=everything, publisher_ids=publisher_ids,
                                           publisher_id=publisher_id, after=after, limit=limit)


# --- rules ------------------------------------------------------------------------------------------

def event_types(requested: Sequence[str]) -> list[str]:
    """The requested types, without repeats; each must be a declared event type or ``*``."""
    unique = list(dict.fromkeys(requested))
    unknown = [(index, name) for index, name in enumerate(unique) if name != ALL_EVENTS and name not in EVENT_TYPES]
    if unknown:
        names = ", ".join(repr(name) for _, name in unknown)
        raise UnknownEventTypes(
            f"Unknown event types: {names}. Use the types listed in the event catalogue, or '*' for all.",
            errors=[{"loc": ["body", "event_types", index], "msg": f"unknown event type {name!r}",
                     "type": "unknown_event_type"} for index, name in unknown])
    return unique


def wants(webhook: Webhook, event_type: str) -> bool:
    return ALL_EVENTS in webhook.event_types or event_type in webhook.event_types


async def check_url(settings: Settings, url: str) -> ssrf.Target:
    return await ssrf.resolve(url, allowed_hosts=settings.outbound_allowed_hosts,
                              timeout=settings.webhook_timeout_seconds)


def redacted(url: str) -> str:
    """The URL without a password in its user info (for audit rows and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def secrets_in_use(webhook: Webhook, now: datetime) -> list[str]:
    """The current secret, and the previous one while its rotation overlap lasts."""
    out = [webhook.secret]
    if webhook.previous_secret and webhook.previous_secret_expires_at and webhook.previous_secret_expires_at > now:
        out.append(webhook.previous_secret)
    return out


async def _require_manage(session: AsyncSession, actor: Principal, webhook: Webhook) -> None:
    """Visible webhooks are the caller's to manage, except a store-wide one seen by a caller
    who no longer holds ``any`` (cannot happen through visibility; kept as a guard)."""
    if actor.condition_for(Permission.webhook_manage) is Condition.any:
        return
    if webhook.publisher_id is not None and webhook.publisher_id in await publishers.publisher_ids_for(
            session, actor, Permission.webhook_manage, owners_only=True):
        return
    raise Forbidden("Only an owner of the webhook's publisher or an admin may change it.")


# --- changes ----------------------------------------------------------------------------------------

async def create(session: AsyncSession, *, actor: Principal, settings: Settings, url: str,
                 event_types_requested: Sequence[str], publisher_slug: str | None) -> tuple[Webhook, str]:
    """Subscribe ``url``; returns the webhook and its secret (shown to the caller once).

    Checks, in order: event types (422), a publisher named unless the caller is an admin
    (403), the URL (422 ``url_not_allowed``), the publisher and its ownership (404/403),
    the per-publisher limit (409).
    """
    types = event_types(event_types_requested)
    if publisher_slug is None and actor.condition_for(Permission.webhook_manage) is not Condition.any:
        raise Forbidden("Name the publisher whose events the webhook receives; only admins subscribe to "
                        "the events of the whole store.")
    await check_url(settings, url)
    publisher_id: uuid.UUID | None = None
    if publisher_slug is not None:
        publisher = await publishers.get(session, publisher_slug)
        await publishers.require_owner_or_any(session, actor, Permission.webhook_manage, publisher)
        publisher_id = publisher.id
    await repository.serialize_scope(session, publisher_id)
    if await repository.count_in_scope(session, publisher_id) >= settings.webhook_limit:
        where = f"publisher {publisher_slug!r}" if publisher_slug else "the store"
        raise WebhookLimitReached(f"{where.capitalize()} already has {settings.webhook_limit} webhooks; "
                                  "delete one first.")
    now = utcnow()
    secret = signing.generate_secret()
    webhook = await repository.add(session, Webhook(
        id=uuid.uuid4(), publisher_id=publisher_id, created_by=actor.user_id, url=url, event_types=types,
        secret=secret, active=True, consecutive_failures=0, created_at=now, updated_at=now))
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.webhook_create,
                resource_type="webhook", resource_id=webhook.id,
                after={"url": redacted(url), "event_types": types, "publisher": publisher_slug})
    return webhook, secret


async def update(session: AsyncSession, *, actor: Principal, settings: Settings, webhook_id: uuid.UUID,
                 url: str | None, event_types_requested: Sequence[str] | None, active: bool | None) -> Webhook:
    """Change the URL or the event types, or switch the webhook on (``active``: it was
    disabled after failing) or off. Turning it on clears the failure count; deliveries
    still pending go out again."""
    types = event_types(event_types_requested) if event_types_requested is not None else None
    if url is not None:
        await check_url(settings, url)
    webhook = await get_visible(session, actor, webhook_id)
    await _require_manage(session, actor, webhook)
    before: dict[str, object] = {}
    after: dict[str, object] = {}
    values: dict[str, object] = {}
    if url is not None and url != webhook.url:
        before["url"], after["url"], values["url"] = redacted(webhook.url), redacted(url), url
    if types is not None and types != webhook.event_types:
        before["event_types"], after["event_types"], values["event_types"] = webhook.event_types, types, types
    now = utcnow()
    if values:
        await repository.change(session, webhook.id, at=now, **values)
    if active is not None and active != webhook.active:
        before["active"], after["active"] = webhook.active, active
        if active:
            await repository.enable(session, webhook.id, now)
        else:
            await repository.change(session, webhook.id, at=now, active=False, disabled_reason="paused by a user",
                                    disabled_at=now)
    if after:
        await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.webhook_update,
                    resource_type="webhook", resource_id=webhook.id, before=before, after=after)
        await session.refresh(webhook)
    return webhook


async def delete(session: AsyncSession, *, actor: Principal, webhook_id: uuid.UUID) -> None:
    webhook = await get_visible(session, actor, webhook_id)
    await _require_manage(session, actor, webhook)
    if not await repository.remove(session, webhook.id):
        raise WebhookNotFound(f"There is no webhook {webhook_id}.")
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.webhook_delete,
                resource_type="webhook", resource_id=webhook.id,
                before={"url": redacted(webhook.url), "event_types": webhook.event_types,
                        "publisher_id": webhook.publisher_id})


async def rotate_secret(session: AsyncSession, *, actor: Principal, webhook_id: uuid.UUID) -> tuple[Webhook, str]:
    """A new secret (returned once); the previous one keeps signing alongside for 24 hours,
    so receivers can switch without losing deliveries."""
    webhook = await get_visible(session, actor, webhook_id)
    await _require_manage(session, actor, webhook)
    now = utcnow()
    secret = signing.generate_secret()
    await repository.rotate_secret(session, webhook.id, secret=secret, previous_until=now + ROTATION_OVERLAP, at=now)
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.webhook_rotate,
                resource_type="webhook", resource_id=webhook.id,
                after={"previous_secret_expires_at": now + ROTATION_OVERLAP})
    await session.refresh(webhook)
    return webhook, secret


async def deliveries(session: AsyncSession, actor: Principal, webhook_id: uuid.UUID, *, state: str | None,
                     after: tuple[datetime, uuid.UUID] | None,
                     limit: int) -> tuple[list[WebhookDelivery], dict[uuid.UUID, list[WebhookAttempt]]]:
    webhook = await get_visible(session, actor, webhook_id)
    rows = await repository.deliveries_of(session, webhook.id, state=state, after=after, limit=limit)
    return rows, await repository.attempts_of(session, [row.id for row in rows])


async def send_test(session: AsyncSession, *, actor: Principal, webhook_id: uuid.UUID) -> WebhookDelivery:
    """Queue a ``webhook.test`` event for this webhook alone ("Send test event"): the event is
    published to the outbox (the sender reads the body from there) and its delivery created at
    once, whatever the webhook's event types; the ``webhooks.send`` sweep signs and sends it,
    with the usual retries, and it appears in the delivery history. Fan-out skips the event."""
    webhook = await get_visible(session, actor, webhook_id)
    await _require_manage(session, actor, webhook)
    event = CloudEvent.of(WebhookTest(webhook_id=webhook.id, publisher_id=webhook.publisher_id),
                          subject=f"webhook/{webhook.id}")
    await publish(session, event)
    now = utcnow()
    delivery = WebhookDelivery(id=uuid.uuid4(), webhook_id=webhook.id, event_id=event.id, event_type=TEST_EVENT,
                               state="pending", attempts=0, next_attempt_at=now, created_at=now, updated_at=now)
    session.add(delivery)
    await session.flush()
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.webhook_test,
                resource_type="webhook", resource_id=webhook.id, after={"event_id": event.id})
    return delivery


# --- events -> deliveries ---------------------------------------------------------------------------

async def fan_out(session: AsyncSession, events: Sequence[CloudEvent]) -> int:
    """One delivery per active webhook that wants each event, in the caller's transaction;
    how many. One read of the active webhooks serves the whole batch.

    A publisher's webhooks get the events of that publisher (``data.publisher_id``, which
    the outbox also records); store-wide webhooks get every event of their types. Webhooks
    created after the event get nothing of it.
    """
    active = await repository.active(session)
    if not active:
        return 0
    now = utcnow()
    rows = []
    for event in events:
        if event.type == TEST_EVENT:
            continue  # addressed to one webhook: its delivery was made with the event (send_test)
        publisher_id = str(event.json_data.get("publisher_id") or "")
        for webhook in active:
            if (webhook.created_at <= event.time and wants(webhook, event.type)
                    and (webhook.publisher_id is None or str(webhook.publisher_id) == publisher_id)):
                rows.append({"id": uuid.uuid4(), "webhook_id": webhook.id, "event_id": event.id,
                             "event_type": event.type, "state": "pending", "attempts": 0, "next_attempt_at": now,
                             "created_at": now, "updated_at": now})
    await repository.add_deliveries(session, rows)
    return len(rows)


async def purge_finished(session: AsyncSession, *, settings: Settings) -> int:
    return await repository.purge_finished_before(
        session, utcnow() - timedelta(days=settings.webhook_delivery_retention_days))
