"""Events that become notifications (P5: every review decision and publishing change
reaches the publisher's members; C5: reviews reach the publisher, replies the author).

The bus runs each subscriber once per event in effect (``processed_events``), and
:func:`service.notify` inserts at most one row per (user, event) besides, so a
redelivered event notifies nobody twice.

``notifications.email`` e-mails each new notification of an e-mailed kind to its
recipient, after the notification's transaction committed (see ``email.py``).

Where the e-mailed kinds come from (O5): ``order.completed`` (orders.notify_completed),
``order.shipped`` (orders.service.ship), ``refund.approved``/``refund.rejected``
(refunds.service), ``payout.approved``/``payout.rejected`` (earnings.notify_payout_decided),
the review decisions (:func:`notify_publisher_members`) and ``payment.failed``
(:func:`notify_payment_failed`, here: the payments module announces the event only).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.accounts import service as accounts
from mercato.accounts.errors import UserNotFound
from mercato.bus.context import current_bus
from mercato.bus.events import CloudEvent
from mercato.bus.registry import observe, subscribe
from mercato.catalog import service as catalog
from mercato.catalog.errors import ListingNotFound
from mercato.kit.logging import log
from mercato.kit.money import format_money
from mercato.notifications import email, repository, service
from mercato.notifications.events import NotificationCreated
from mercato.payments.events import PaymentFailed
from mercato.publishers import service as publishers
from mercato.ratings.events import RatingReplied

# What of an event's data a notification keeps (never who else was involved).
KEPT = ("listing_id", "publisher_id", "slug", "version_id", "version", "task_id", "new_task_id", "review_id",
        "rating", "reason", "latest", "status")

Text = Callable[[str, dict[str, Any]], tuple[str, str]]


def _version(name: str, d: dict[str, Any]) -> str:
    return f"{name} {d['version']}" if d.get("version") else name


def _reason(d: dict[str, Any]) -> str:
    return f"Reason: {d['reason']}" if d.get("reason") else ""


# event type -> (title, body) for the publisher's members
PUBLISHER_TEXTS: dict[str, Text] = {
    "review.approved": lambda n, d: (f"{_version(n, d)} was approved", ""),
    "review.rejected": lambda n, d: (f"{_version(n, d)} was rejected", _reason(d)),
    "review.changes_requested": lambda n, d: (f"Changes requested for {_version(n, d)}", _reason(d)),
    "review.appeal_upheld": lambda n, d: (f"Your appeal for {_version(n, d)} was upheld",
                                          "It is back in the review queue."),
    "review.appeal_denied": lambda n, d: (f"Your appeal for {_version(n, d)} was denied", _reason(d)),
    "version.approved": lambda n, d: (f"{_version(n, d)} is available",
                                      "It is the latest version now." if d.get("latest") else ""),
    "version.yanked": lambda n, d: (f"{_version(n, d)} was yanked", _reason(d)),
    "listing.published": lambda n, d: (f"{n} is published", "It is visible in the store now."),
    "listing.suspended": lambda n, d: (f"{n} was suspended", _reason(d)),
    "listing.unsuspended": lambda n, d: (f"{n} is no longer suspended",
                                         f"It is {d['status']} again." if d.get("status") else ""),
    "rating.created": lambda n, d: (f"New {d.get('rating', '?')}-star review of {n}", ""),
}


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


async def _listing_name(session: AsyncSession, data: dict[str, Any]) -> str:
    listing_id = _uuid(data.get("listing_id"))
    if listing_id is not None:
        try:
            return (await catalog.get_by_id(session, listing_id)).name
        except ListingNotFound:
            pass
    return str(data.get("slug") or "Your listing")


def _link(event: CloudEvent, *, console_of: str | None = None) -> str | None:
    """The page the notification is about (WEB.md: links point at pages, never at /api/v1).
    For a publisher's members (``console_of``: the publisher's slug) a review decision, a
    version or listing change opens the listing in the publisher console; a review, and
    everything for buyers, the listing's store page (by slug when the event carries it)."""
    data = event.json_data
    listing_id = data.get("listing_id")
    if not listing_id:
        return None
    if event.type.startswith("rating."):
        return f"/listings/{data.get('slug') or listing_id}#reviews"
    if console_of is not None:
        return f"/console/publisher/{console_of}/listings/{listing_id}"
    return f"/listings/{data.get('slug') or listing_id}"


def _kept(data: dict[str, Any]) -> dict[str, Any]:
    return {key: data[key] for key in KEPT if key in data}


async def _members_of(session: AsyncSession, publisher_id: uuid.UUID | None) -> tuple[str | None, list[uuid.UUID]]:
    """The publisher's slug and its members (none when there is no such publisher)."""
    if publisher_id is None:
        return None, []
    publisher = (await catalog.publishers_by_id(session, {publisher_id})).get(publisher_id)
    if publisher is None:
        return None, []
    members = await publishers.members(session, publisher)
    return publisher.slug, [uuid.UUID(user_id) for user_id, _email, _role in members]


@observe(*PUBLISHER_TEXTS, name="notifications.publisher_members", each=True)
async def notify_publisher_members(session: AsyncSession, event: CloudEvent) -> None:
    """Review decisions, appeal outcomes, version and listing changes, new reviews: every
    member of the listing's publisher is told."""
    slug, members = await _members_of(session, _uuid(event.json_data.get("publisher_id")))
    if event.type == "rating.created":  # the author is told nothing of their own review
        members = [m for m in members if str(m) != str(event.json_data.get("user_id"))]
    if not members:
        return
    title, body = PUBLISHER_TEXTS[event.type](await _listing_name(session, event.json_data), event.json_data)
    await service.notify(session, event_id=event.id, user_ids=members, kind=event.type, title=title, body=body,
                         link=_link(event, console_of=slug), data=_kept(event.json_data))


@observe(RatingReplied, name="notifications.review_author", each=True)
async def notify_review_author(session: AsyncSession, event: CloudEvent[RatingReplied]) -> None:
    """The publisher answered a review: its author is told."""
    name = await _listing_name(session, event.json_data)
    await service.notify(session, event_id=event.id, user_ids=[event.data.user_id], kind=event.type,
                         title=f"The publisher of {name} replied to your review", link=_link(event),
                         data=_kept(event.json_data))


@observe(PaymentFailed, name="notifications.payment_failed", each=True)
async def notify_payment_failed(session: AsyncSession, event: CloudEvent[PaymentFailed]) -> None:
    """The provider declined a payment: its payer is told (in the inbox, and by e-mail where
    the store sends mail). A payment for an order says the order still waits for money;
    canceled and expired payments are the payer's own doing and tell nobody."""
    payment = event.data
    money = format_money(payment.amount, payment.currency)
    if payment.order_id is not None:
        title = f"Your payment of {money} for an order did not go through"
        body = "The order still waits for payment: pay it again before it expires."
    else:
        title = f"Your wallet top-up of {money} did not go through"
        body = ""
    await service.notify(session, event_id=event.id, user_ids=[payment.user_id], kind="payment.failed", title=title,
                         body=body, link=(f"/orders/{payment.order_id}" if payment.order_id is not None
                               else f"/wallet?payment={payment.payment_id}"),
                         data={key: event.json_data[key] for key in ("payment_id", "order_id", "amount", "currency",
                                                                     "provider", "purpose") if key in event.json_data})


@subscribe(NotificationCreated, name="notifications.email", outside_transaction=True)
async def email_notification(session: AsyncSession, event: CloudEvent[NotificationCreated]) -> None:
    """A new notification of an e-mailed kind goes to its recipient's address too: only when
    the store has an SMTP server and the account is active (a deleted account took its
    notifications with it). A failed send raises: the bus retries with backoff, then makes
    the delivery a dead letter. At least once: see ``email.py`` on the ``Message-ID``.
    It runs outside the delivery's write transaction (reads only): a slow SMTP server never
    holds the database writer."""
    runtime = current_bus().runtime
    mailer = runtime.mailer if runtime is not None else None
    created = event.data
    if mailer is None or not email.is_emailed(created.kind):
        return
    user_id = created.user_id
    notification = await repository.own(session, user_id, created.notification_id)
    if notification is None or not email.is_emailed(notification.kind):
        return
    try:
        user = await accounts.get_user(session, user_id)
    except UserNotFound:
        return
    if not user.is_active:
        return
    await mailer.send(email.compose(notification, email=user.email, display_name=user.display_name,
                                    settings=runtime.settings))
    log.info("notifications: e-mailed", notification_id=str(notification.id), kind=notification.kind,
             user_id=str(user_id))
