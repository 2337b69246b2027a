from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from mercato.kit.clock import utcnow
from mercato.kit.schemas import ReadModel, Slug, WriteModel
from mercato.kit.ssrf import MAX_URL_LENGTH
from mercato.models import Webhook, WebhookAttempt, WebhookDelivery

EventTypeName = Annotated[str, StringConstraints(min_length=1, max_length=100)]
DeliveryState = Literal["pending", "sending", "succeeded", "failed"]

URL_DESCRIPTION = (f"http or https, at most {MAX_URL_LENGTH} characters; its host must resolve to public "
                   "addresses only (422 url_not_allowed otherwise).")
TYPES_DESCRIPTION = "Event types (see the event catalogue), or '*' for every type."


class WebhookCreate(WriteModel):
    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH, description=URL_DESCRIPTION)
    event_types: list[EventTypeName] = Field(min_length=1, max_length=100, description=TYPES_DESCRIPTION)
    publisher: Slug | None = Field(default=None, description=(
        "The publisher whose events the webhook receives (you must own it). Only admins may leave it out: "
        "the webhook then receives every event of its types."))


class WebhookUpdate(WriteModel):
    url: str | None = Field(default=None, min_length=1, max_length=MAX_URL_LENGTH, description=URL_DESCRIPTION)
    event_types: list[EventTypeName] | None = Field(default=None, min_length=1, max_length=100,
                                                    description=TYPES_DESCRIPTION)
    active: bool | None = Field(default=None, description=(
        "true re-enables a webhook disabled after failures (the failure count starts again); false pauses it."))


class WebhookRead(ReadModel):
    id: uuid.UUID
    publisher_id: uuid.UUID | None = Field(description="None: a store-wide webhook (admins).")
    url: str
    event_types: list[str]
    active: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    consecutive_failures: int = Field(description="Failed attempts in a row.")
    previous_secret_expires_at: datetime | None = Field(description=(
        "While set, deliveries are signed with the previous secret too (after a rotation)."))
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_model(cls, webhook: Webhook) -> WebhookRead:
        out = cls.model_validate(webhook)
        if out.previous_secret_expires_at is not None and out.previous_secret_expires_at <= utcnow():
            out.previous_secret_expires_at = None
        return out


class WebhookWithSecret(WebhookRead):
    secret: str = Field(description=(
        "The signing secret (whsec_…, Standard Webhooks). Shown only now: store it."))

    @classmethod
    def with_secret(cls, webhook: Webhook, secret: str) -> WebhookWithSecret:
        return cls(**WebhookRead.from_model(webhook).model_dump(), secret=secret)


class AttemptRead(ReadModel):
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryRead(ReadModel):
    id: uuid.UUID = Field(description="The webhook-id header of every attempt of this delivery.")
    webhook_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime | None = Field(description="When the next attempt is due (pending) or the lease ends "
                                                         "(sending).")
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    last_duration_ms: int | None
    succeeded_at: datetime | None
    created_at: datetime
    history: list[AttemptRead] = Field(default_factory=list, description="Every attempt, oldest first.")

    @classmethod
    def from_model(cls, delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> DeliveryRead:
        out = cls.model_validate(delivery)
        out.history = [AttemptRead.model_validate(a) for a in attempts]
        return out
