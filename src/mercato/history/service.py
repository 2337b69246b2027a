"""Operation history (O2): which events become entries in whose history.

The mapping is a table: an event type, the kind of entry, whose history it goes to and
its title. ``FAMILIES`` covers whole families of event types by prefix (installs and
tasks), so a newly declared ``task.*`` or ``installation.*`` type is recorded without a
code change here; any other new type is one line in ``RULES``.

Audiences: ``user`` is the user named in the event (``data.user_id``: the buyer, the
reviewer, the installation's owner); ``publisher`` is every member of the publisher named
in it (``data.publisher_id``), so publishing actions and payouts show in the history of
the people who run that publisher.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.events import EVENT_TYPES, CloudEvent, load_event_types
from mercato.history import repository
from mercato.history.errors import InvalidHistoryRange
from mercato.kit.clock import utcnow
from mercato.models import HistoryEntry
from mercato.publishers import service as publishers

Audience = Literal["user", "publisher"]


@dataclass(frozen=True)
class Rule:
    kind: str
    audience: Audience
    title: str


def _rules(kind: str, audience: Audience, titles: dict[str, str]) -> dict[str, Rule]:
    return {event_type: Rule(kind, audience, title) for event_type, title in titles.items()}


RULES: dict[str, Rule] = {
    **_rules("purchase", "user", {
        "order.created": "Order placed", "order.awaiting_payment": "Order awaiting payment",
        "order.paid": "Order paid", "order.shipped": "Order shipped", "order.delivered": "Order delivered",
        "order.completed": "Purchase completed", "order.canceled": "Order canceled",
        "order.expired": "Order expired unpaid", "order.failed": "Order failed"}),
    **_rules("refund", "user", {
        "refund.requested": "Refund requested", "refund.approved": "Refund approved",
        "refund.rejected": "Refund rejected", "refund.completed": "Refund paid back"}),
    **_rules("payment", "user", {
        "payment.succeeded": "Payment succeeded", "payment.failed": "Payment failed",
        "payment.refunded": "Payment refunded"}),
    **_rules("library", "user", {
        "entitlement.granted": "Added to your library", "entitlement.revoked": "Removed from your library"}),
    **_rules("review", "user", {
        "rating.created": "Review written", "rating.updated": "Review edited", "rating.deleted": "Review deleted"}),
    **_rules("publishing", "publisher", {
        "listing.created": "Listing created", "listing.updated": "Listing edited",
        "listing.submitted": "Listing submitted for review", "listing.published": "Listing published",
        "listing.rejected": "Listing rejected", "listing.changes_requested": "Changes requested for a listing",
        "listing.delisted": "Listing delisted", "listing.relisted": "Listing relisted",
        "listing.suspended": "Listing suspended", "listing.unsuspended": "Listing unsuspended",
        "version.uploaded": "Version uploaded", "version.submitted": "Version submitted for review",
        "version.approved": "Version approved", "version.rejected": "Version rejected",
        "version.changes_requested": "Changes requested for a version", "version.yanked": "Version yanked"}),
    **_rules("install", "user", {
        "instance.registered": "Instance registered", "instance.deleted": "Instance removed",
        "status.corrected": "Installation status corrected"}),
    **_rules("payout", "publisher", {
        "payout.requested": "Payout requested", "payout.approved": "Payout approved",
        "payout.rejected": "Payout rejected"}),
}

# Families by prefix: every declared event type with it, unless RULES names it or it is in
# SKIPPED (steps and notices, not operations).
FAMILIES: dict[str, tuple[str, Audience]] = {"installation.": ("install", "user"), "task.": ("install", "user")}
SKIPPED = frozenset({"task.dispatched", "task.progress", "installation.update_available"})


def rule_for(event_type: str) -> Rule | None:
    if event_type in RULES:
        return RULES[event_type]
    if event_type in SKIPPED:
        return None
    for prefix, (kind, audience) in FAMILIES.items():
        if event_type.startswith(prefix):
            return Rule(kind, audience, event_type.replace(".", " ").replace("_", " ").capitalize())
    return None


def recorded_types() -> tuple[str, ...]:
    """Every declared event type that becomes history (what the subscriber listens to)."""
    load_event_types()
    return tuple(t for t in EVENT_TYPES if rule_for(t) is not None)


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


async def _audience(session: AsyncSession, rule: Rule, data: dict[str, Any]) -> set[uuid.UUID]:
    if rule.audience == "user":
        user_id = _uuid(data.get("user_id"))
        return {user_id} if user_id else set()
    publisher_id = _uuid(data.get("publisher_id"))
    return set(await publishers.member_ids(session, publisher_id)) if publisher_id else set()


async def record(session: AsyncSession, event: CloudEvent) -> int:
    """Add the event to the history of everyone it concerns (once per user); how many entries."""
    rule = rule_for(event.type)
    if rule is None:
        return 0
    users = await _audience(session, rule, event.json_data) - await repository.known_recipients(session, event.id)
    listing_id = _uuid(event.json_data.get("listing_id"))
    repository.add(session, [HistoryEntry(user_id=user_id, event_id=event.id, kind=rule.kind, action=event.type,
                                          subject=event.subject[:200], listing_id=listing_id, title=rule.title,
                                          data=dict(event.json_data), occurred_at=event.time)
                             for user_id in sorted(users)])
    return len(users)


async def of_user(session: AsyncSession, *, user_id: uuid.UUID, kinds: Sequence[str] | None,
                  actions: Sequence[str] | None, since: datetime | None, until: datetime | None,
                  after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[HistoryEntry]:
    if since is not None and until is not None and since >= until:
        raise InvalidHistoryRange("`since` must be before `until`.", errors=[
            {"loc": ["query", "since"], "msg": "since is not before until", "type": "invalid_range"}])
    return await repository.of_user(session, user_id, kinds=kinds, actions=actions, since=since, until=until,
                                    after=after, limit=limit)


async def count(session: AsyncSession, *, user_id: uuid.UUID, kinds: Sequence[str] | None,
                actions: Sequence[str] | None, since: datetime | None, until: datetime | None) -> int:
    return await repository.count(session, user_id, kinds=kinds, actions=actions, since=since, until=until)


async def purge(session: AsyncSession, *, retention_days: int, now: datetime | None = None, limit: int = 1000) -> int:
    """Delete up to ``limit`` entries older than the retention period (the sweep repeats)."""
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    return await repository.purge_before(session, cutoff, limit=limit)
