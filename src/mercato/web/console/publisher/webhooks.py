"""The publisher console's webhooks (E2, M12), through the service and permission of their API
routes: ``webhook:manage`` (``/webhooks``: owners of the publisher and admins).

A webhook's secret is shown once, on the page that answers its creation or rotation; it is
never put in a URL or shown again. *Send test event* queues a ``webhook.test`` delivery for
that webhook alone (``POST /webhooks/{id}/test``), sent by the ``webhooks.send`` sweep.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import Form, Request
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.bus.events import EVENT_TYPES, load_event_types
from mercato.bus.registry import ALL_EVENTS
from mercato.kit.errors import MercatoError, ValidationFailed
from mercato.models import Publisher
from mercato.platform.routing import ReadSession, RuntimeDep, WriteSession, get_runtime
from mercato.web.console.access import console_actor, discard, refused
from mercato.web.console.publisher.common import PREFIX, publisher_for
from mercato.web.pages import page_router, redirect, render
from mercato.webhooks import service as webhooks
from mercato.webhooks.errors import UnknownEventTypes, WebhookNotFound
from mercato.webhooks.events import TEST_EVENT
from mercato.webhooks.schemas import WebhookCreate

router = page_router(prefix=PREFIX)

WebhookManager = Annotated[Principal, console_actor(Permission.webhook_manage)]


def _event_type_names() -> list[str]:
    load_event_types()
    return [ALL_EVENTS, *sorted(name for name in EVENT_TYPES if name != TEST_EVENT)]


def _on_field(error: MercatoError, field: str) -> MercatoError:
    """The same problem, its message beside the form field ``field`` (the API's ``loc`` names
    body paths like ``event_types[2]``)."""
    messages = [str(item.get("msg", "")) for item in error.errors or []] or [error.detail]
    return type(error)(error.detail, errors=[{"loc": ["form", field], "msg": "; ".join(messages),
                                              "type": error.code}])


# --- webhooks -------------------------------------------------------------------------------------

async def _webhooks_context(session: AsyncSession, actor: Principal, slug: str) -> dict[str, Any]:
    publisher = await publisher_for(session, actor, slug, Permission.webhook_manage)
    rows = await webhooks.search(session, actor, publisher_slug=slug, after=None, limit=100)
    return {"publisher": publisher, "webhooks": rows, "event_types": _event_type_names(),
            "values": {"event_types": ALL_EVENTS}, "console": "publisher", "section": "webhooks"}


@router.get("/webhooks", name="console_publisher_webhooks")
async def webhooks_page(slug: str, request: Request, session: ReadSession, actor: WebhookManager) -> Response:
    """The publisher's webhooks (``GET /webhooks?publisher=``): owners see them, as in the API."""
    return await render(request, "console/publisher/webhooks.html", await _webhooks_context(session, actor, slug))


@router.post("/webhooks", name="console_publisher_create_webhook")
async def create_webhook(slug: str, request: Request, session: WriteSession, actor: WebhookManager, rt: RuntimeDep,
                         url: Annotated[str, Form(max_length=4000)] = "",
                         event_types: Annotated[str, Form(max_length=10_000)] = "") -> Response:
    """``POST /webhooks`` for this publisher; the answer shows the secret, once."""
    requested = [name.strip() for name in event_types.replace(",", "\n").splitlines() if name.strip()]
    try:
        await publisher_for(session, actor, slug, Permission.webhook_manage)
        try:
            body = WebhookCreate.model_validate({"url": url.strip(), "event_types": requested, "publisher": slug})
        except ValidationError as exc:
            raise ValidationFailed("Check the highlighted fields.", errors=[
                {"loc": ["form", str(e["loc"][0]) if e["loc"] else "url"], "msg": str(e["msg"]), "type": e["type"]}
                for e in exc.errors()]) from None
        try:
            webhook, secret = await webhooks.create(session, actor=actor, settings=rt.settings, url=body.url,
                                                    event_types_requested=body.event_types, publisher_slug=slug)
        except UnknownEventTypes as error:
            raise _on_field(error, "event_types") from None
        except ValidationFailed as error:  # url_not_allowed
            raise _on_field(error, "url") from None
    except MercatoError as error:
        await discard(session)
        async with rt.db.read_session() as reader:
            context = await _webhooks_context(reader, actor, slug)
        return await refused(request, error, "console/publisher/webhooks.html", {
            **context, "values": {"url": url, "event_types": event_types}})
    context = await _webhooks_context(session, actor, slug)
    return await render(request, "console/publisher/webhooks.html", {
        **context, "created": webhook, "secret": secret}, status_code=201)


async def _webhook_context(session: AsyncSession, actor: Principal, publisher: Publisher,
                           webhook_id: uuid.UUID) -> dict[str, Any]:
    webhook = await webhooks.get_visible(session, actor, webhook_id)
    if webhook.publisher_id != publisher.id:
        raise WebhookNotFound(f"{publisher.slug} has no webhook {webhook_id}.")
    rows, attempts = await webhooks.deliveries(session, actor, webhook.id, state=None, after=None, limit=50)
    return {"publisher": publisher, "webhook": webhook, "deliveries": rows, "attempts": attempts,
            "console": "publisher", "section": "webhooks"}


@router.get("/webhooks/{webhook_id}", name="console_publisher_webhook")
async def webhook_page(slug: str, webhook_id: uuid.UUID, request: Request, session: ReadSession,
                       actor: WebhookManager, sent: str = "") -> Response:
    """One webhook and its signed delivery history (``GET /webhooks/{id}/deliveries``)."""
    publisher = await publisher_for(session, actor, slug, Permission.webhook_manage)
    return await render(request, "console/publisher/webhook.html", {
        **await _webhook_context(session, actor, publisher, webhook_id), "sent": sent})


async def _webhook_refused(request: Request, session: AsyncSession, actor: Principal, slug: str,
                           webhook_id: uuid.UUID, error: MercatoError) -> Response:
    await discard(session)
    async with get_runtime(request).db.read_session() as reader:
        publisher = await publisher_for(reader, actor, slug, Permission.webhook_manage)
        context = await _webhook_context(reader, actor, publisher, webhook_id)
    return await refused(request, error, "console/publisher/webhook.html", context)


@router.post("/webhooks/{webhook_id}/test", name="console_publisher_test_webhook")
async def test_webhook(slug: str, webhook_id: uuid.UUID, request: Request, session: WriteSession,
                       actor: WebhookManager) -> Response:
    """``POST /webhooks/{id}/test``: a ``webhook.test`` delivery, sent within a second or so."""
    try:
        publisher = await publisher_for(session, actor, slug, Permission.webhook_manage)
        await _webhook_context(session, actor, publisher, webhook_id)
        await webhooks.send_test(session, actor=actor, webhook_id=webhook_id)
    except MercatoError as error:
        return await _webhook_refused(request, session, actor, slug, webhook_id, error)
    return redirect(str(request.url_for("console_publisher_webhook", slug=slug, webhook_id=webhook_id)) + "?sent=1")


@router.post("/webhooks/{webhook_id}/active", name="console_publisher_webhook_active")
async def set_active(slug: str, webhook_id: uuid.UUID, request: Request, session: WriteSession,
                     actor: WebhookManager, rt: RuntimeDep,
                     active: Annotated[Literal["true", "false"], Form()] = "true") -> Response:
    """``PATCH /webhooks/{id}`` ``{"active": …}``: pause it, or switch it on again after failures."""
    try:
        publisher = await publisher_for(session, actor, slug, Permission.webhook_manage)
        await _webhook_context(session, actor, publisher, webhook_id)
        await webhooks.update(session, actor=actor, settings=rt.settings, webhook_id=webhook_id, url=None,
                              event_types_requested=None, active=active == "true")
    except MercatoError as error:
        return await _webhook_refused(request, session, actor, slug, webhook_id, error)
    return redirect(str(request.url_for("console_publisher_webhook", slug=slug, webhook_id=webhook_id)))


@router.post("/webhooks/{webhook_id}/rotate-secret", name="console_publisher_rotate_webhook")
async def rotate_secret(slug: str, webhook_id: uuid.UUID, request: Request, session: WriteSession,
                        actor: WebhookManager) -> Response:
    """``POST /webhooks/{id}/rotate-secret``: the new secret on this answer only; the previous one
    keeps signing alongside for 24 hours."""
    try:
        publisher = await publisher_for(session, actor, slug, Permission.webhook_manage)
        await _webhook_context(session, actor, publisher, webhook_id)
        _, secret = await webhooks.rotate_secret(session, actor=actor, webhook_id=webhook_id)
        context = await _webhook_context(session, actor, publisher, webhook_id)
    except MercatoError as error:
        return await _webhook_refused(request, session, actor, slug, webhook_id, error)
    return await render(request, "console/publisher/webhook.html", {**context, "secret": secret})


@router.post("/webhooks/{webhook_id}/delete", name="console_publisher_delete_webhook")
async def delete_webhook(slug: str, webhook_id: uuid.UUID, request: Request, session: WriteSession,
                         actor: WebhookManager) -> Response:
    """``DELETE /webhooks/{id}``: the webhook and its delivery history go."""
    try:
        publisher = await publisher_for(session, actor, slug, Permission.webhook_manage)
        await _webhook_context(session, actor, publisher, webhook_id)
        await webhooks.delete(session, actor=actor, webhook_id=webhook_id)
    except MercatoError as error:
        return await _webhook_refused(request, session, actor, slug, webhook_id, error)
    return redirect(str(request.url_for("console_publisher_webhooks", slug=slug)))
