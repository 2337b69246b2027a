"""Every query on publishers, their members and publisher applications.

"Visible to" scoping lives here: an ``own`` grant sees the publishers the caller is a
member of; ``public`` and ``any`` see every publisher (profiles are public).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.kit.pagination import after_key, count_matching
from mercato.models import Publisher, PublisherApplication, PublisherMember, User


async def by_slug(session: AsyncSession, slug: str) -> Publisher | None:
    return await session.scalar(select(Publisher).where(Publisher.slug == slug))


async def by_id(session: AsyncSession, publisher_id: uuid.UUID) -> Publisher | None:
    return await session.get(Publisher, publisher_id)


async def slug_taken(session: AsyncSession, slug: str) -> bool:
    return await session.scalar(select(Publisher.id).where(Publisher.slug == slug)) is not None


async def add(session: AsyncSession, publisher: Publisher) -> bool:
    """Insert a publisher; False when its slug is taken, also by a transaction that committed
    after our check (the unique index decides, inside a savepoint so the caller's transaction
    stays usable)."""
    try:
        async with session.begin_nested():
            session.add(publisher)
    except IntegrityError:
        return False
    return True


async def member_role(session: AsyncSession, publisher_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
    return await session.scalar(select(PublisherMember.role).where(
        PublisherMember.publisher_id == publisher_id, PublisherMember.user_id == user_id))


async def publisher_ids_of(session: AsyncSession, user_id: uuid.UUID) -> list[uuid.UUID]:
    return list(await session.scalars(select(PublisherMember.publisher_id).where(PublisherMember.user_id == user_id)))


async def members(session: AsyncSession, publisher_id: uuid.UUID) -> list[tuple[PublisherMember, User]]:
    rows = await session.execute(
        select(PublisherMember, User).join(User, User.id == PublisherMember.user_id)
        .where(PublisherMember.publisher_id == publisher_id).order_by(PublisherMember.created_at)
    )
    return [(member, user) for member, user in rows]


async def upsert_member(session: AsyncSession, *, publisher_id: uuid.UUID, user_id: uuid.UUID, role: str,
                        at: datetime) -> bool:
    """Add a member or change their role. True when the row is new."""
    changed = await session.execute(update(PublisherMember).where(
        PublisherMember.publisher_id == publisher_id, PublisherMember.user_id == user_id).values(role=role))
    if changed.rowcount:  # type: ignore[attr-defined]
        return False
    session.add(PublisherMember(publisher_id=publisher_id, user_id=user_id, role=role, created_at=at))
    await session.flush()
    return True


async def remove_member(session: AsyncSession, publisher_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    result = await session.execute(delete(PublisherMember).where(
        PublisherMember.publisher_id == publisher_id, PublisherMember.user_id == user_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def owner_count(session: AsyncSession, publisher_id: uuid.UUID) -> int:
    return int(await session.scalar(select(func.count()).select_from(PublisherMember).where(
        PublisherMember.publisher_id == publisher_id, PublisherMember.role == "owner")) or 0)


# --- applications ---------------------------------------------------------------------------

async def add_application(session: AsyncSession, application: PublisherApplication) -> PublisherApplication:
    session.add(application)
    await session.flush()
    return application


async def _serialize(session: AsyncSession, *keys: str) -> None:
    """Make transactions that take the same keys run one after the other, so a check that
    follows (one owner left? one pending application?) sees the others' committed changes.

    SQLite write transactions are already serial (BEGIN IMMEDIATE). PostgreSQL takes
    transaction-level advisory locks, in a fixed order so two callers cannot deadlock.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    for key in sorted(keys):
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})


async def serialize_member_changes(session: AsyncSession, publisher_id: uuid.UUID) -> None:
    await _serialize(session, f"publisher_members:{publisher_id}")


async def serialize_applications(session: AsyncSession, *, user_id: uuid.UUID, slug: str) -> None:
    """Concurrent applications by one user, or for one slug, run one after the other."""
    await _serialize(session, f"publisher_application:user:{user_id}", f"publisher_application:slug:{slug}")


async def pending_application_of(session: AsyncSession, user_id: uuid.UUID) -> PublisherApplication | None:
    return await session.scalar(select(PublisherApplication).where(
        PublisherApplication.user_id == user_id, PublisherApplication.status == "pending"))


async def pending_slug_taken(session: AsyncSession, slug: str) -> bool:
    return await session.scalar(select(PublisherApplication.id).where(
        PublisherApplication.slug == slug, PublisherApplication.status == "pending")) is not None


async def application(session: AsyncSession, application_id: uuid.UUID) -> PublisherApplication | None:
    return await session.get(PublisherApplication, application_id)


async def applications_of(session: AsyncSession, user_id: uuid.UUID) -> list[PublisherApplication]:
    return list(await session.scalars(select(PublisherApplication).where(PublisherApplication.user_id == user_id)
                                      .order_by(PublisherApplication.created_at.desc())))


async def decide_application(session: AsyncSession, application_id: uuid.UUID, *, status: str, reason: str | None,
                             decided_by: uuid.UUID, at: datetime, publisher_id: uuid.UUID | None) -> bool:
    """Guarded transition pending -> approved|rejected: of two concurrent decisions one wins."""
    result = await session.execute(
        update(PublisherApplication)
        .where(PublisherApplication.id == application_id, PublisherApplication.status == "pending")
        .values(status=status, reason=reason, decided_by=decided_by, decided_at=at, updated_at=at,
                publisher_id=publisher_id)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def _applications(status: str | None):  # type: ignore[no-untyped-def]
    query = select(PublisherApplication)
    if status:
        query = query.where(PublisherApplication.status == status)
    return query


async def count_applications(session: AsyncSession, *, status: str | None) -> int:
    return await count_matching(session, _applications(status))


async def search_applications(session: AsyncSession, *, status: str | None,
                              after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[PublisherApplication]:
    query = _applications(status)
    return list(await session.scalars(after_key(query, PublisherApplication.created_at, PublisherApplication.id,
                                                after, limit)))


async def search(session: AsyncSession, *, text: str | None, limit: int) -> list[Publisher]:
    """Publishers by slug or name (a substring, any case), by slug: the admin console's list."""
    query = select(Publisher)
    if text:
        needle = text.lower()
        query = query.where(or_(func.lower(Publisher.slug).contains(needle, autoescape=True),
                                func.lower(Publisher.name).contains(needle, autoescape=True)))
    return list(await session.scalars(query.order_by(Publisher.slug).limit(limit)))
