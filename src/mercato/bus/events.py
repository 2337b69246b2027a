"""CloudEvents 1.0 and the list of event types the store emits.

Every event type and the shape of its ``data`` is declared here, in one module, so the
API docs and subscribers can rely on it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mercato.kit.clock import utcnow

SPEC_VERSION = "1.0"

# type -> (source module, description of ``data``)
EVENT_TYPES: dict[str, tuple[str, str]] = {
    "user.registered": ("accounts", "{user_id, email}"),
    "user.updated": ("accounts", "{user_id, changed: [field]}"),
    "user.password_changed": ("accounts", "{user_id}"),
    "user.disabled": ("accounts", "{user_id}"),
    "user.enabled": ("accounts", "{user_id}"),
    "role.changed": ("access", "{role, permissions: {permission: condition}}"),
    "user.roles_changed": ("access", "{user_id, roles: [role]}"),
    "publisher.application_submitted": ("publishers", "{application_id, user_id, slug}"),
    "publisher.application_approved": ("publishers", "{application_id, user_id, publisher_id, slug}"),
    "publisher.application_rejected": ("publishers", "{application_id, user_id, reason}"),
    "publisher.created": ("publishers", "{publisher_id, slug, owner_id}"),
    "publisher.updated": ("publishers", "{publisher_id, slug, changed: [field]}"),
    "publisher.member_added": ("publishers", "{publisher_id, user_id, role}"),
    "publisher.member_removed": ("publishers", "{publisher_id, user_id}"),
    "category.changed": ("catalog", "{category_id, slug, change: created|updated|deleted}"),
    "listing.created": ("catalog", "{listing_id, publisher_id, slug, kind}"),
    "listing.updated": ("catalog", "{listing_id, publisher_id, slug, changed: [field]}"),
    "listing.submitted": ("catalog", "{listing_id, publisher_id, slug, version}"),
    "listing.published": ("catalog", "{listing_id, publisher_id, slug}"),
    "listing.rejected": ("catalog", "{listing_id, publisher_id, slug, reason}"),
    "listing.changes_requested": ("catalog", "{listing_id, publisher_id, slug, reason}"),
    "listing.delisted": ("catalog", "{listing_id, publisher_id, slug}"),
    "listing.relisted": ("catalog", "{listing_id, publisher_id, slug}"),
    "listing.suspended": ("catalog", "{listing_id, publisher_id, slug, reason}"),
    "listing.unsuspended": ("catalog", "{listing_id, publisher_id, slug, status}"),
    "version.uploaded": ("publishing", "{listing_id, publisher_id, version_id, version, sha256, size, risk_score}"),
    "version.submitted": ("publishing", "{listing_id, publisher_id, version_id, version}"),
    "version.approved": ("publishing", "{listing_id, publisher_id, version_id, version, latest: bool}"),
    "version.rejected": ("publishing", "{listing_id, publisher_id, version_id, version, reason}"),
    "version.changes_requested": ("publishing", "{listing_id, publisher_id, version_id, version, reason}"),
    "version.yanked": ("publishing", "{listing_id, publisher_id, version_id, version, reason}"),
    "version.downloaded": ("publishing", "{listing_id, publisher_id, version_id, version, user_id}"),
    "review.created": ("review", "{task_id, listing_id, publisher_id, version_id, version, priority}"),
    "review.claimed": ("review", "{task_id, listing_id, publisher_id, reviewer_id}"),
    "review.released": ("review", "{task_id, listing_id, publisher_id, reviewer_id, timed_out: bool}"),
    "review.approved": ("review", "{task_id, listing_id, publisher_id, version_id, version, reviewer_id}"),
    "review.rejected": ("review", "{task_id, listing_id, publisher_id, version_id, version, reviewer_id, reason}"),
    "review.changes_requested": ("review", "{task_id, listing_id, publisher_id, version_id, version, reviewer_id, "
                                           "reason}"),
    "review.appealed": ("review", "{task_id, listing_id, publisher_id, version_id, version, reason}"),
    "review.appeal_upheld": ("review", "{task_id, listing_id, publisher_id, version_id, version, new_task_id}"),
    "review.appeal_denied": ("review", "{task_id, listing_id, publisher_id, version_id, version, reason}"),
    "rating.created": ("ratings", "{review_id, listing_id, publisher_id, user_id, rating}"),
    "rating.updated": ("ratings", "{review_id, listing_id, publisher_id, user_id, rating}"),
    "rating.deleted": ("ratings", "{review_id, listing_id, publisher_id, user_id}"),
    "rating.replied": ("ratings", "{review_id, listing_id, publisher_id, user_id}"),
    "rating.hidden": ("ratings", "{review_id, listing_id, publisher_id, user_id, hidden: bool, reason}"),
    "entitlement.granted": ("library", "{entitlement_id, user_id, listing_id, source, order_id}"),
    "entitlement.revoked": ("library", "{entitlement_id, user_id, listing_id, reason}"),
    "notification.created": ("notifications", "{notification_id, user_id, kind, title}"),
    "config.changed": ("policies", "{changed: {key: {before, after}}}"),
    "order.created": ("orders", "{order_id, user_id, status, total, currency, lines: [{line_id, listing_id, "
                                "publisher_id, delivery, quantity, total}]}"),
    "order.awaiting_payment": ("orders", "{order_id, user_id, status, total, currency, shortfall}"),
    "order.paid": ("orders", "{order_id, user_id, status, total, currency, physical: bool, lines: [...]}"),
    "order.shipped": ("orders", "{order_id, user_id, status, total, currency, publisher_id, carrier, "
                                "tracking_number}"),
    "order.delivered": ("orders", "{order_id, user_id, status, total, currency, lines: [...]}"),
    "order.completed": ("orders", "{order_id, user_id, status, total, currency, commission_bps, lines: [...]}"),
    "order.expired": ("orders", "{order_id, user_id, status, total, currency, reason}"),
    "order.canceled": ("orders", "{order_id, user_id, status, total, currency, reason, by: buyer|publisher|admin}"),
    "order.failed": ("orders", "{order_id, user_id, status, total, currency, reason}"),
    "wallet.debited": ("wallet", "{order_id, user_id, total, currency, transaction_id}"),
    "wallet.debit_refused": ("wallet", "{order_id, user_id, total, currency, balance, shortfall}"),
    "entitlement.refused": ("library", "{order_id, user_id, reason: already_owned|licence_keys_exhausted, detail, "
                                       "total, currency}"),
    "payment.created": ("payments", "{payment_id, user_id, provider, purpose, order_id, amount, currency, status}"),
    "payment.succeeded": ("payments", "{payment_id, user_id, provider, purpose, order_id, amount, currency, status}"),
    "payment.failed": ("payments", "{payment_id, user_id, provider, purpose, order_id, amount, currency, status}"),
    "payment.canceled": ("payments", "{payment_id, user_id, provider, purpose, order_id, amount, currency, status}"),
    "payment.expired": ("payments", "{payment_id, user_id, provider, purpose, order_id, amount, currency, status}"),
    "payment.refunded": ("payments", "{payment_id, user_id, provider, purpose, order_id, amount, currency, status, "
                                     "refund_amount, refunded_amount, reason}"),
    "refund.requested": ("refunds", "{refund_id, order_id, user_id, amount, currency, status, automatic}"),
    "refund.approved": ("refunds", "{refund_id, order_id, user_id, amount, currency, status, automatic}"),
    "refund.rejected": ("refunds", "{refund_id, order_id, user_id, amount, currency, status, automatic}"),
    "refund.completed": ("refunds", "{refund_id, order_id, user_id, amount, currency, status, automatic}"),
    "payout.requested": ("earnings", "{payout_id, publisher_id, amount, currency, requested_by}"),
    "payout.approved": ("earnings", "{payout_id, publisher_id, amount, currency, decided_by}"),
    "payout.rejected": ("earnings", "{payout_id, publisher_id, amount, currency, decided_by, reason}"),
    # installs (I1–I6): ``user_id`` is the owner, so the owner's live stream carries them
    "instance.registered": ("installs", "{instance_id, user_id, name}"),
    "instance.deleted": ("installs", "{instance_id, user_id, name}"),
    "installation.created": ("installs", "{installation_id, instance_id, user_id, listing_id, name, state, version}"),
    "installation.state_changed": ("installs", "{installation_id, instance_id, user_id, listing_id, name, from, to, "
                                               "version}"),
    "installation.update_available": ("installs", "{installation_id, instance_id, user_id, listing_id, version, "
                                                  "installed_version, auto_upgrade: bool}"),
    "task.queued": ("installs", "{task_id, instance_id, installation_id, user_id, kind, state, version, attempt}"),
    "task.dispatched": ("installs", "{task_id, instance_id, installation_id, user_id, kind, state, version, attempt}"),
    "task.progress": ("installs", "{task_id, instance_id, installation_id, user_id, kind, state, progress, message}"),
    "task.succeeded": ("installs", "{task_id, instance_id, installation_id, user_id, kind, state, version, message}"),
    "task.failed": ("installs", "{task_id, instance_id, installation_id, user_id, kind, state, version, message}"),
    "task.canceled": ("installs", "{task_id, instance_id, installation_id, user_id, kind, state, version, message}"),
    "status.corrected": ("installs", "{resource: installation|task, id, user_id, instance_id, field, old, new, "
                                     "reason}"),
}


def declare_event_type(event_type: str, *, source: str, data: str) -> None:
    """Add an event type (tests and plugins); the store's own types are listed above."""
    EVENT_TYPES.setdefault(event_type, (source, data))


class UnknownEventType(ValueError):
    pass


@dataclass(frozen=True)
class CloudEvent:
    type: str
    subject: str
    data: dict[str, Any]
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    time: datetime = field(default_factory=utcnow)
    sequence: int | None = None

    @property
    def source(self) -> str:
        return f"mercato/{EVENT_TYPES[self.type][0]}"

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise UnknownEventType(f"event type {self.type!r} is not declared in mercato.bus.events")

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "specversion": SPEC_VERSION, "id": str(self.id), "source": self.source, "type": self.type,
            "subject": self.subject, "time": self.time.isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json", "data": self.data,
        }
        if self.sequence is not None:
            body["sequence"] = str(self.sequence)
        return body
