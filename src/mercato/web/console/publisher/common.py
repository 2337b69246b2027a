"""What the pages of the publisher console share: the prefix of their routes, the check that the
actor acts for the publisher, and reading prices and validation errors from forms."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.catalog import service as catalog
from mercato.catalog.errors import ListingNotFound
from mercato.kit.errors import Forbidden, ValidationFailed
from mercato.models import Listing, Publisher
from mercato.publishers import service as publishers

PREFIX = "/console/publisher/{slug}"


async def publisher_for(session: AsyncSession, actor: Principal, slug: str, permission: Permission) -> Publisher:
    """The publisher, if the actor acts for it under ``permission`` (member or ``any``); else the 403 page."""
    publisher = await publishers.get(session, slug)
    if not await publishers.acts_for(session, actor, permission, publisher):
        raise Forbidden(f"Only members of {publisher.slug!r} and admins may open its console.")
    return publisher


async def listing_of(session: AsyncSession, actor: Principal, publisher: Publisher, key: str,
                     permission: Permission) -> Listing:
    """The publisher's listing ``key`` if the actor may change it under ``permission``; else 404."""
    listing = await catalog.get_for_change(session, actor, key, permission)
    if listing.publisher_id != publisher.id:
        raise ListingNotFound(f"{publisher.slug} has no listing {key!r}.")
    return listing


def parse_money(raw: str, field: str, problems: list[dict[str, Any]]) -> int | None:
    """A price typed in major units (``9.99``) as minor units; a problem on ``field`` when it is not one."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        value = Decimal(raw)
        if value < 0 or value != value.quantize(Decimal("0.01")):
            raise InvalidOperation
    except InvalidOperation:
        problems.append({"loc": ["form", field], "msg": "A price like 9.99 (0 for free)", "type": "value_error"})
        return None
    return int(value * 100)


def form_invalid(exc: ValidationError) -> ValidationFailed:
    """An API body's validation errors, each beside the form field it came from."""
    errors = []
    for item in exc.errors():
        loc = [str(part) for part in item["loc"]]
        field = loc[0] if loc else "form"
        if field == "offers":
            field = "physical_price" if "stock" in loc else "digital_price"
        errors.append({"loc": ["form", field], "msg": str(item["msg"]), "type": item["type"]})
    return ValidationFailed("Check the highlighted fields.", errors=errors)
