"""The publisher console's coupons (U2): codes for all of the publisher's listings or one of them
(``coupon:manage``), through the coupons service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Request
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.responses import Response

from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.catalog import service as catalog
from mercato.coupons import service as coupon_service
from mercato.coupons.schemas import CouponCreate
from mercato.kit.errors import MercatoError, ValidationFailed
from mercato.platform.routing import ReadSession, RuntimeDep, WriteSession
from mercato.web.console.access import console_actor, discard, refused
from mercato.web.console.publisher.common import PREFIX, form_invalid, parse_money, publisher_for
from mercato.web.pages import page_router, redirect, render

router = page_router(prefix=PREFIX)

CouponManager = Annotated[Principal, console_actor(Permission.coupon_manage)]
COUPON_FIELDS = ("code", "kind", "value", "listing", "starts_on", "ends_on", "max_redemptions", "per_user_limit")


async def _coupons_context(session: AsyncSession, actor: Principal, slug: str) -> dict[str, Any]:
    publisher = await publisher_for(session, actor, slug, Permission.coupon_manage)
    coupons, _ = await coupon_service.search(session, actor=actor, publisher=slug, active=None, after=None, limit=100,
                                             with_total=False)
    own = await catalog.of_publisher(session, actor, publisher, after=None, limit=100)
    return {"publisher": publisher, "coupons": coupons, "listings": own, "names": {row.id: row.name for row in own},
            "values": {"kind": "percent"}, "console": "publisher", "section": "coupons"}


@router.get("/coupons", name="console_publisher_coupons")
async def coupons_page(slug: str, request: Request, session: ReadSession, actor: CouponManager) -> Response:
    return await render(request, "console/publisher/coupons.html", await _coupons_context(session, actor, slug))


def _coupon_body(form: FormData, slug: str) -> dict[str, Any]:
    values = {name: str(form.get(name, "")).strip() for name in COUPON_FIELDS}
    problems: list[dict[str, Any]] = []
    body: dict[str, Any] = {"code": values["code"], "kind": values["kind"]}
    if values["kind"] == "fixed":
        body["value"] = parse_money(values["value"], "value", problems)
    else:
        body["value"] = int(values["value"]) if values["value"].isdigit() else values["value"]
    if values["listing"]:
        body.update(scope="listing", listing_id=values["listing"])
    else:
        body.update(scope="publisher", publisher=slug)
    for name, field in (("starts_on", "starts_at"), ("ends_on", "ends_at")):
        if values[name]:
            body[field] = f"{values[name]}T00:00:00Z"
    for name in ("max_redemptions", "per_user_limit"):
        if values[name]:
            body[name] = values[name]
    if problems:
        raise ValidationFailed("Check the highlighted fields.", errors=problems)
    return body


@router.post("/coupons", name="console_publisher_create_coupon")
async def create_coupon(slug: str, request: Request, session: WriteSession, actor: CouponManager,
                        rt: RuntimeDep) -> Response:
    """``POST /coupons`` for this publisher (all its listings) or one of its listings."""
    form = await request.form()
    try:
        await publisher_for(session, actor, slug, Permission.coupon_manage)
        try:
            body = CouponCreate.model_validate(_coupon_body(form, slug))
        except ValidationError as exc:
            raise form_invalid(exc) from None
        await coupon_service.create(session, actor=actor, code=body.code, kind=body.kind, value=body.value,
                                    scope=body.scope, publisher=body.publisher, listing_id=body.listing_id,
                                    starts_at=body.starts_at, ends_at=body.ends_at,
                                    max_redemptions=body.max_redemptions, per_user_limit=body.per_user_limit,
                                    active=body.active, currency=rt.settings.currency)
    except MercatoError as error:
        await discard(session)
        async with rt.db.read_session() as reader:
            context = await _coupons_context(reader, actor, slug)
        return await refused(request, error, "console/publisher/coupons.html", {
            **context, "values": {name: str(form.get(name, "")) for name in COUPON_FIELDS}})
    return redirect(str(request.url_for("console_publisher_coupons", slug=slug)))
