"""Outgoing webhooks: subscribe URLs to event types, see their deliveries, rotate secrets."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Response

from mercato.access.dependencies import idempotent, requires
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.kit.errors import Forbidden
from mercato.kit.pagination import CursorParam, Limit, decode_cursor, keyset_page
from mercato.kit.schemas import Page, Slug
from mercato.platform.routing import ReadSession, RuntimeDep, TransactionalRoute, WriteSession
from mercato.publishers.errors import PublisherNotFound
from mercato.webhooks import service
from mercato.webhooks.errors import UnknownEventTypes, UrlNotAllowed, WebhookLimitReached, WebhookNotFound
from mercato.webhooks.schemas import (
    DeliveryRead,
    DeliveryState,
    WebhookCreate,
    WebhookRead,
    WebhookUpdate,
    WebhookWithSecret,
)

router = APIRouter(route_class=TransactionalRoute, tags=["webhooks"])

WebhookManager = Annotated[Principal, requires(Permission.webhook_manage)]


@router.get("/webhooks", response_model=Page[WebhookRead], responses=PublisherNotFound.responses())
async def list_webhooks(actor: WebhookManager, session: ReadSession, publisher: Slug | None = None,
                        cursor: CursorParam = None, limit: Limit = 20) -> Page[WebhookRead]:
    """Your webhooks: those of the publishers you own (admins: all), newest first;
    `publisher` narrows to one publisher. Secrets are never listed."""
    rows = await service.search(session, actor, publisher_slug=publisher, after=decode_cursor(cursor),
                                limit=limit + 1)
    page, next_cursor = keyset_page(rows, limit)
    return Page[WebhookRead](items=[WebhookRead.from_model(w) for w in page], next_cursor=next_cursor)


@router.post("/webhooks", status_code=201, response_model=WebhookWithSecret,
             responses=UnknownEventTypes.responses(UrlNotAllowed, Forbidden, PublisherNotFound, WebhookLimitReached))
async def create_webhook(body: WebhookCreate, actor: WebhookManager,
                         _key: Annotated[str | None, idempotent(required=False)], session: WriteSession,
                         runtime: RuntimeDep) -> WebhookWithSecret:
    """Subscribe a URL to event types. A publisher's webhook (you must own the publisher)
    receives that publisher's events; admins may leave `publisher` out to receive every
    event of the types. Deliveries are CloudEvents JSON, signed per Standard Webhooks with
    the `secret` returned here, once. Accepts an `Idempotency-Key`."""
    webhook, secret = await service.create(session, actor=actor, settings=runtime.settings, url=body.url,
                                           event_types_requested=body.event_types, publisher_slug=body.publisher)
    return WebhookWithSecret.with_secret(webhook, secret)


@router.get("/webhooks/{webhook_id}", response_model=WebhookRead, responses=WebhookNotFound.responses())
async def get_webhook(webhook_id: uuid.UUID, actor: WebhookManager, session: ReadSession) -> WebhookRead:
    return WebhookRead.from_model(await service.get_visible(session, actor, webhook_id))


@router.patch("/webhooks/{webhook_id}", response_model=WebhookRead,
              responses=WebhookNotFound.responses(UnknownEventTypes, UrlNotAllowed, Forbidden))
async def update_webhook(webhook_id: uuid.UUID, body: WebhookUpdate, actor: WebhookManager, session: WriteSession,
                         runtime: RuntimeDep) -> WebhookRead:
    """Change the URL or event types, re-enable a webhook disabled after failures
    (`{"active": true}`), or pause it (`{"active": false}`)."""
    webhook = await service.update(session, actor=actor, settings=runtime.settings, webhook_id=webhook_id,
                                   url=body.url, event_types_requested=body.event_types, active=body.active)
    return WebhookRead.from_model(webhook)


@router.delete("/webhooks/{webhook_id}", status_code=204, responses=WebhookNotFound.responses(Forbidden))
async def delete_webhook(webhook_id: uuid.UUID, actor: WebhookManager, session: WriteSession) -> Response:
    """Delete the webhook with its delivery history; nothing more is sent to it."""
    await service.delete(session, actor=actor, webhook_id=webhook_id)
    return Response(status_code=204)


@router.post("/webhooks/{webhook_id}/rotate-secret", response_model=WebhookWithSecret,
             responses=WebhookNotFound.responses(Forbidden))
async def rotate_secret(webhook_id: uuid.UUID, actor: WebhookManager,
                        _key: Annotated[str | None, idempotent(required=False)],
                        session: WriteSession) -> WebhookWithSecret:
    """A new signing secret, shown once. For 24 hours deliveries carry signatures by both
    the new and the previous secret, so receivers can switch without losing any."""
    webhook, secret = await service.rotate_secret(session, actor=actor, webhook_id=webhook_id)
    return WebhookWithSecret.with_secret(webhook, secret)


@router.get("/webhooks/{webhook_id}/deliveries", response_model=Page[DeliveryRead],
            responses=WebhookNotFound.responses())
async def list_deliveries(webhook_id: uuid.UUID, actor: WebhookManager, session: ReadSession,
                          state: DeliveryState | None = None, cursor: CursorParam = None,
                          limit: Limit = 20) -> Page[DeliveryRead]:
    """Delivery history, newest first: state, attempts with status code, error and duration."""
    rows, attempts = await service.deliveries(session, actor, webhook_id, state=state, after=decode_cursor(cursor),
                                              limit=limit + 1)
    page, next_cursor = keyset_page(rows, limit)
    return Page[DeliveryRead](items=[DeliveryRead.from_model(d, attempts.get(d.id, [])) for d in page],
                              next_cursor=next_cursor)


@router.post("/webhooks/{webhook_id}/test", status_code=202, response_model=DeliveryRead,
             responses=WebhookNotFound.responses(Forbidden))
async def send_test(webhook_id: uuid.UUID, actor: WebhookManager, session: WriteSession) -> DeliveryRead:
    """Queue a `webhook.test` event for this webhook only (whatever its event types): it is
    signed, sent and retried like any delivery and shows in the delivery history."""
    delivery = await service.send_test(session, actor=actor, webhook_id=webhook_id)
    return DeliveryRead.from_model(delivery, [])
