"""Every query on users, refresh tokens and API tokens."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.kit.pagination import after_key, count_matching
from mercato.models import ApiToken, RefreshToken, User


def email_key(email: str) -> str:
    return email.strip().casefold()


async def get(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def display_names(session: AsyncSession, user_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Display names by user id, in one statement (users that do not exist are left out)."""
    if not user_ids:
        return {}
    rows = await session.execute(select(User.id, User.display_name).where(User.id.in_(user_ids)))
    return {user_id: name for user_id, name in rows}


async def by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email_key == email_key(email)))


async def email_exists(session: AsyncSession, email: str) -> bool:
    return await session.scalar(select(User.id).where(User.email_key == email_key(email))) is not None


async def add(session: AsyncSession, user: User) -> User:
    session.add(user)
    await session.flush()
    return user


async def bump_token_version(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(update(User).where(User.id == user_id).values(token_version=User.token_version + 1))


def _matching(query: str | None, active: bool | None):  # type: ignore[no-untyped-def]
    stmt = select(User)
    if query:
        like = f"%{query.casefold()}%"
        stmt = stmt.where(or_(User.email_key.like(like), User.display_name.ilike(like)))
    if active is not None:
        stmt = stmt.where(User.is_active == active)
    return stmt


async def count(session: AsyncSession, *, query: str | None, active: bool | None) -> int:
    return await count_matching(session, _matching(query, active))


async def search(session: AsyncSession, *, query: str | None, active: bool | None,
                 after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[User]:
    stmt = _matching(query, active)
    return list(await session.scalars(after_key(stmt, User.created_at, User.id, after, limit)))


# --- refresh tokens -----------------------------------------------------------------------

async def add_refresh(session: AsyncSession, token: RefreshToken) -> None:
    session.add(token)
    await session.flush()


async def refresh_by_hash(session: AsyncSession, token_hash: str) -> RefreshToken | None:
    return await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash))


async def mark_rotated(session: AsyncSession, token_id: uuid.UUID, at: datetime) -> bool:
    """Guarded: only one of two concurrent refreshes with the same token wins."""
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == token_id, RefreshToken.rotated_at.is_(None), RefreshToken.revoked_at.is_(None))
        .values(rotated_at=at)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


async def session_live(session: AsyncSession, family_id: uuid.UUID) -> bool:
    """Whether a sign-in (refresh family) still holds a token not revoked."""
    return await session.scalar(select(RefreshToken.id).where(
        RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None)).limit(1)) is not None


async def revoke_family(session: AsyncSession, family_id: uuid.UUID, at: datetime) -> None:
    await session.execute(
        update(RefreshToken).where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=at)
    )


async def revoke_all_refresh(session: AsyncSession, user_id: uuid.UUID, at: datetime) -> None:
    await session.execute(
        update(RefreshToken).where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=at)
    )


# --- API tokens -----------------------------------------------------------------------------

async def revoke_all_api_tokens(session: AsyncSession, user_id: uuid.UUID, at: datetime) -> None:
    await session.execute(
        update(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None)).values(revoked_at=at)
        .execution_options(synchronize_session=False)
    )

async def add_api_token(session: AsyncSession, token: ApiToken) -> None:
    session.add(token)
    await session.flush()


async def api_token_by_hash(session: AsyncSession, token_hash: str) -> ApiToken | None:
    return await session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash))


async def api_tokens_of(session: AsyncSession, user_id: uuid.UUID) -> list[ApiToken]:
    return list(await session.scalars(
        select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .order_by(ApiToken.created_at.desc())
    ))


async def api_token_of(session: AsyncSession, user_id: uuid.UUID, token_id: uuid.UUID) -> ApiToken | None:
    return await session.scalar(select(ApiToken).where(
        ApiToken.id == token_id, ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None)))


async def touch_api_token(session: AsyncSession, token_id: uuid.UUID, at: datetime) -> None:
    await session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=at))
