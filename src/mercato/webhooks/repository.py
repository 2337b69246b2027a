"""Every query on webhooks, their deliveries and delivery attempts.

"Visible to" scoping lives here: an ``any`` grant of ``webhook:manage`` sees every webhook;
an ``own`` grant sees the webhooks of the publishers the caller owns.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.kit.pagination import after_key
from mercato.models import Webhook, WebhookAttempt, WebhookDelivery

# Deliveries a sender may take: waiting for their (next) attempt, or leased by a sender
# whose lease ran out.
TAKEABLE = ("pending", "sending")


def _visible(query: Any, *, everything: bool, publisher_ids: Sequence[uuid.UUID]) -> Any:
    if everything:
        return query
    return query.where(Webhook.publisher_id.in_(list(publisher_ids)))


# --- webhooks ------------------------------------------------------------------------------------

async def add(session: AsyncSession, webhook: Webhook) -> Webhook:
    session.add(webhook)
    await session.flush()
    return webhook


async def visible(session: AsyncSession, webhook_id: uuid.UUID, *, everything: bool,
                  publisher_ids: Sequence[uuid.UUID]) -> Webhook | None:
    return await session.scalar(_visible(select(Webhook).where(Webhook.id == webhook_id),
                                         everything=everything, publisher_ids=publisher_ids))


async def search_visible(session: AsyncSession, *, everything: bool, publisher_ids: Sequence[uuid.UUID],
                         publisher_id: uuid.UUID | None, after: tuple[datetime, uuid.UUID] | None,
                         limit: int) -> list[Webhook]:
    """Newest first."""
    query = _visible(select(Webhook), everything=everything, publisher_ids=publisher_ids)
    if publisher_id is not None:
        query = query.where(Webhook.publisher_id == publisher_id)
    return list(await session.scalars(after_key(query, Webhook.created_at, Webhook.id, after, limit)))


async def serialize_scope(session: AsyncSession, publisher_id: uuid.UUID | None) -> None:
    """Creations for one publisher (or store-wide) run one after the other, so the limit
    check that follows sees the others' webhooks. SQLite write transactions are serial
    already; PostgreSQL takes a transaction-level advisory lock."""
    if session.get_bind().dialect.name != "postgresql":
        return
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                          {"key": f"webhooks:{publisher_id or 'store'}"})


async def count_in_scope(session: AsyncSession, publisher_id: uuid.UUID | None) -> int:
    condition = Webhook.publisher_id.is_(None) if publisher_id is None else Webhook.publisher_id == publisher_id
    return int(await session.scalar(select(func.count()).select_from(Webhook).where(condition)) or 0)


async def change(session: AsyncSession, webhook_id: uuid.UUID, *, at: datetime, **values: Any) -> None:
    await session.execute(update(Webhook).where(Webhook.id == webhook_id).values(updated_at=at, **values))


async def enable(session: AsyncSession, webhook_id: uuid.UUID, at: datetime) -> None:
    await session.execute(update(Webhook).where(Webhook.id == webhook_id).values(
        active=True, consecutive_failures=0, disabled_reason=None, disabled_at=None, updated_at=at))


async def rotate_secret(session: AsyncSession, webhook_id: uuid.UUID, *, secret: str, previous_until: datetime,
                        at: datetime) -> None:
    """The current secret becomes the previous one in the same statement: two rotations at
    once cannot lose the secret the first one handed out."""
    await session.execute(update(Webhook).where(Webhook.id == webhook_id).values(
        previous_secret=Webhook.secret, previous_secret_expires_at=previous_until, secret=secret, updated_at=at))


async def remove(session: AsyncSession, webhook_id: uuid.UUID) -> bool:
    """Delete a webhook with its deliveries and their attempts."""
    deliveries = select(WebhookDelivery.id).where(WebhookDelivery.webhook_id == webhook_id)
    await session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(deliveries)))
    await session.execute(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id))
    result = await session.execute(delete(Webhook).where(Webhook.id == webhook_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def active(session: AsyncSession) -> list[Webhook]:
    """Every active webhook (the fan-out filters by publisher, types and creation time)."""
    return list(await session.scalars(select(Webhook).where(Webhook.active.is_(True))))


async def subscribed(session: AsyncSession, *, publisher_id: uuid.UUID | None,
                     created_before: datetime) -> list[Webhook]:
    """Active webhooks that may receive an event of ``publisher_id`` (None: no publisher):
    store-wide ones and that publisher's. The caller filters on event types."""
    scope = Webhook.publisher_id.is_(None)
    if publisher_id is not None:
        scope = or_(scope, Webhook.publisher_id == publisher_id)
    return list(await session.scalars(select(Webhook).where(
        Webhook.active.is_(True), scope, Webhook.created_at <= created_before)))


async def by_ids(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Webhook]:
    if not ids:
        return {}
    return {w.id: w for w in await session.scalars(select(Webhook).where(Webhook.id.in_(list(ids))))}


async def count_failure(session: AsyncSession, webhook_id: uuid.UUID) -> None:
    await session.execute(update(Webhook).where(Webhook.id == webhook_id).values(
        consecutive_failures=Webhook.consecutive_failures + 1))


async def reset_failures(session: AsyncSession, webhook_id: uuid.UUID) -> None:
    await session.execute(update(Webhook).where(Webhook.id == webhook_id, Webhook.consecutive_failures != 0)
                          .values(consecutive_failures=0))


async def disable_if_failing(session: AsyncSession, webhook_id: uuid.UUID, *, threshold: int, reason: str,
                             at: datetime) -> bool:
    """active -> disabled once the failures in a row reach ``threshold``; True when this call did it."""
    result = await session.execute(update(Webhook).where(
        Webhook.id == webhook_id, Webhook.active.is_(True), Webhook.consecutive_failures >= threshold)
        .values(active=False, disabled_reason=reason, disabled_at=at, updated_at=at))
    return result.rowcount == 1  # type: ignore[attr-defined]


# --- deliveries ---------------------------------------------------------------------------------

async def add_deliveries(session: AsyncSession, rows: list[dict[str, object]]) -> None:
    if rows:
        await session.execute(insert(WebhookDelivery), rows)


async def due(session: AsyncSession, *, now: datetime, limit: int) -> list[WebhookDelivery]:
    """Deliveries of active webhooks whose attempt (or expired lease) is due, oldest first.
    On PostgreSQL rows another sender is taking right now are skipped."""
    query = (select(WebhookDelivery).join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
             .where(WebhookDelivery.state.in_(TAKEABLE), WebhookDelivery.next_attempt_at <= now,
                    Webhook.active.is_(True))
             .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=WebhookDelivery)
    return list(await session.scalars(query))


async def take(session: AsyncSession, delivery_id: uuid.UUID, *, now: datetime, lease_until: datetime) -> bool:
    """Guarded: due -> sending with the attempt counted, leased until ``lease_until``. Of two
    senders one gets it."""
    result = await session.execute(update(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.state.in_(TAKEABLE),
        WebhookDelivery.next_attempt_at <= now)
        .values(state="sending", attempts=WebhookDelivery.attempts + 1, next_attempt_at=lease_until,
                updated_at=now))
    return result.rowcount == 1  # type: ignore[attr-defined]


async def finish_attempt(session: AsyncSession, delivery_id: uuid.UUID, *, attempt: int, state: str,
                         next_attempt_at: datetime | None, status_code: int | None, error: str | None,
                         duration_ms: int, at: datetime) -> bool:
    """Guarded: only the sender holding attempt ``attempt`` records its outcome (a sender
    whose lease expired and was taken over records nothing)."""
    values: dict[str, Any] = {
        "state": state, "next_attempt_at": next_attempt_at, "last_attempt_at": at, "last_status_code": status_code,
        "last_error": error, "last_duration_ms": duration_ms, "updated_at": at}
    if state == "succeeded":
        values["succeeded_at"] = at
    result = await session.execute(update(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.state == "sending",
        WebhookDelivery.attempts == attempt).values(**values))
    return result.rowcount == 1  # type: ignore[attr-defined]


async def add_attempt(session: AsyncSession, attempt: WebhookAttempt) -> None:
    session.add(attempt)
    await session.flush()


async def deliveries_of(session: AsyncSession, webhook_id: uuid.UUID, *, state: str | None,
                        after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[WebhookDelivery]:
    """Newest first."""
    query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
    if state is not None:
        query = query.where(WebhookDelivery.state == state)
    return list(await session.scalars(after_key(query, WebhookDelivery.created_at, WebhookDelivery.id, after, limit)))


async def attempts_of(session: AsyncSession,
                      delivery_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[WebhookAttempt]]:
    out: dict[uuid.UUID, list[WebhookAttempt]] = {delivery_id: [] for delivery_id in delivery_ids}
    if delivery_ids:
        for row in await session.scalars(select(WebhookAttempt).where(
                WebhookAttempt.delivery_id.in_(list(delivery_ids)))
                .order_by(WebhookAttempt.delivery_id, WebhookAttempt.attempt)):
            out[row.delivery_id].append(row)
    return out


async def purge_finished_before(session: AsyncSession, before: datetime) -> int:
    old = select(WebhookDelivery.id).where(WebhookDelivery.state.in_(("succeeded", "failed")),
                                           WebhookDelivery.created_at < before)
    await session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(old)))
    result = await session.execute(delete(WebhookDelivery).where(
        WebhookDelivery.state.in_(("succeeded", "failed")), WebhookDelivery.created_at < before))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
