"""The store's categories: reading them, the defaults a new store starts with, and the
admins' changes (each with ``category.changed`` and an audit entry)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.principal import Principal
from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.catalog import repository
from mercato.catalog.errors import CategoryInUse, CategoryNotFound, CategorySlugTaken, UnknownCategory
from mercato.kit.clock import utcnow
from mercato.kit.errors import found_or_raise
from mercato.models import Category

DEFAULT_CATEGORIES = (
    ("productivity", "Productivity", "Notes, tasks, calendars and office tools."),
    ("developer-tools", "Developer tools", "Editors, plugins, debuggers and build tools."),
    ("media", "Media", "Photos, music, video and streaming."),
    ("communication", "Communication", "Chat, mail and collaboration."),
    ("security", "Security", "Passwords, backups, VPNs and monitoring."),
    ("games", "Games", "Games of every genre."),
    ("utilities", "Utilities", "System tools and small helpers."),
    ("education", "Education", "Learning and reference."),
)


async def categories(session: AsyncSession) -> list[Category]:
    return await repository.categories(session)


async def categories_by_id(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, Category]:
    return await repository.categories_by_id(session, ids)


async def category(session: AsyncSession, slug: str) -> Category:
    found = found_or_raise(await repository.category_by_slug(session, slug), CategoryNotFound,
                           f"There is no category {slug!r}.")
    return found


async def category_id_of(session: AsyncSession, slug: str | None) -> uuid.UUID | None:
    """The id of the category a listing names (None for none); 422 for an unknown one."""
    if slug is None:
        return None
    found = await repository.category_by_slug(session, slug)
    if found is None:
        raise UnknownCategory(f"There is no category {slug!r}; GET /api/v1/categories lists them.", errors=[
            {"loc": ["body", "category"], "msg": "unknown category", "type": "value_error"}])
    return found.id


async def seed_categories(session: AsyncSession) -> None:
    """The default categories, once, on a store that has none (admins edit them after)."""
    if await repository.any_category(session):
        return
    now = utcnow()
    for position, (slug, name, description) in enumerate(DEFAULT_CATEGORIES):
        await repository.add_category(session, Category(id=uuid.uuid4(), slug=slug, name=name,
                                                        description=description, position=position,
                                                        created_at=now, updated_at=now))


async def create_category(session: AsyncSession, *, actor: Principal, fields: dict[str, Any]) -> Category:
    now = utcnow()
    created = Category(id=uuid.uuid4(), created_at=now, updated_at=now, **fields)
    if await repository.category_by_slug(session, created.slug) or not await repository.add_category(session, created):
        raise CategorySlugTaken(f"The category slug {created.slug!r} is taken.")
    await publish(session, CloudEvent(type="category.changed", subject=str(created.id),
                                      data={"category_id": str(created.id), "slug": created.slug,
                                            "change": "created"}))
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.category_create,
                resource_type="category", resource_id=created.id, after=fields)
    return created


async def update_category(session: AsyncSession, *, actor: Principal, slug: str,
                          changes: dict[str, Any]) -> Category:
    found = await category(session, slug)
    changes = {field: value for field, value in changes.items() if value is not None}
    before = {field: getattr(found, field) for field in changes}
    for field, value in changes.items():
        setattr(found, field, value)
    if changes:
        found.updated_at = utcnow()
        await repository.evict_details_of(session, category_id=found.id)  # details show their category
        await publish(session, CloudEvent(type="category.changed", subject=str(found.id),
                                          data={"category_id": str(found.id), "slug": found.slug,
                                                "change": "updated"}))
        await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.category_update,
                    resource_type="category", resource_id=found.id, before=before, after=changes)
    return found


async def delete_category(session: AsyncSession, *, actor: Principal, slug: str) -> None:
    found = await category(session, slug)
    if await repository.category_in_use(session, found.id):
        raise CategoryInUse(f"Move the listings of {slug!r} to another category first.")
    await repository.delete_category(session, found.id)
    await repository.evict_details_of(session, category_id=found.id)
    await publish(session, CloudEvent(type="category.changed", subject=str(found.id),
                                      data={"category_id": str(found.id), "slug": slug, "change": "deleted"}))
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.category_delete,
                resource_type="category", resource_id=found.id, before={"slug": slug, "name": found.name})
