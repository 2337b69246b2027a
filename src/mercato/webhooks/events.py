"""The events the webhooks module emits (their ``data``; see ``mercato.bus.events``)."""

from __future__ import annotations

import uuid

from mercato.bus.events import EventData, event_type

TEST_EVENT = "webhook.test"


@event_type(TEST_EVENT, source="webhooks")
class WebhookTest(EventData):
    """A test event a webhook's manager asked for ("Send test event"): delivered to that one
    webhook only, signed and retried like any other delivery, whatever its event types."""
    webhook_id: uuid.UUID
    publisher_id: uuid.UUID | None
