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
