"""Every query on roles, grants and role memberships."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.models import KnownPermission, Role, RoleGrant, User, UserRole


async def roles_of(session: AsyncSession, user_id: uuid.UUID) -> list[str]:
    rows = await session.scalars(select(UserRole.role_name).where(UserRole.user_id == user_id))
    return sorted(rows)


async def grants_of_roles(session: AsyncSession, role_names: Iterable[str]) -> list[tuple[str, str]]:
    names = list(role_names)
    if not names:
        return []
    rows = await session.execute(
        select(RoleGrant.permission, RoleGrant.condition).where(RoleGrant.role_name.in_(names))
    )
    return [(permission, condition) for permission, condition in rows]


async def list_roles(session: AsyncSession) -> list[tuple[Role, list[RoleGrant]]]:
    roles = list(await session.scalars(select(Role).order_by(Role.name)))
    grants = list(await session.scalars(select(RoleGrant).order_by(RoleGrant.permission)))
    by_role: dict[str, list[RoleGrant]] = {}
    for grant in grants:
        by_role.setdefault(grant.role_name, []).append(grant)
    return [(role, by_role.get(role.name, [])) for role in roles]


async def get_role(session: AsyncSession, name: str) -> Role | None:
    return await session.get(Role, name)


async def grants_of_role(session: AsyncSession, name: str) -> list[RoleGrant]:
    return list(await session.scalars(select(RoleGrant).where(RoleGrant.role_name == name)
                                      .order_by(RoleGrant.permission)))


async def add_role(session: AsyncSession, *, name: str, description: str, is_system: bool) -> Role:
    role = Role(name=name, description=description, is_system=is_system)
    session.add(role)
    await session.flush()
    return role


async def replace_grants(session: AsyncSession, name: str, grants: dict[str, str]) -> None:
    await session.execute(delete(RoleGrant).where(RoleGrant.role_name == name))
    if grants:
        await session.execute(insert(RoleGrant), [
            {"role_name": name, "permission": permission, "condition": condition}
            for permission, condition in sorted(grants.items())
        ])


async def add_grants(session: AsyncSession, name: str, grants: dict[str, str]) -> None:
    existing = {grant.permission for grant in await grants_of_role(session, name)}
    rows = [{"role_name": name, "permission": p, "condition": c} for p, c in grants.items() if p not in existing]
    if rows:
        await session.execute(insert(RoleGrant), rows)


async def known_permissions(session: AsyncSession) -> set[str]:
    return set(await session.scalars(select(KnownPermission.permission)))


async def mark_known(session: AsyncSession, permissions: Iterable[str]) -> None:
    rows = [{"permission": p} for p in permissions]
    if rows:
        await session.execute(insert(KnownPermission), rows)


async def set_user_roles(session: AsyncSession, user_id: uuid.UUID, role_names: Iterable[str]) -> None:
    await session.execute(delete(UserRole).where(UserRole.user_id == user_id))
    rows = [{"user_id": user_id, "role_name": name} for name in sorted(set(role_names))]
    if rows:
        await session.execute(insert(UserRole), rows)


async def add_user_role(session: AsyncSession, user_id: uuid.UUID, role_name: str) -> bool:
    """Grant a role; False when the user already had it."""
    if role_name in await roles_of(session, user_id):
        return False
    await session.execute(insert(UserRole).values(user_id=user_id, role_name=role_name))
    return True


async def roles_of_users(session: AsyncSession, user_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    ids = list(user_ids)
    out: dict[uuid.UUID, list[str]] = {user_id: [] for user_id in ids}
    if not ids:
        return out
    rows = await session.execute(select(UserRole.user_id, UserRole.role_name).where(UserRole.user_id.in_(ids)))
    for user_id, role_name in rows:
        out[user_id].append(role_name)
    for names in out.values():
        names.sort()
    return out


async def active_super_admins(session: AsyncSession) -> list[uuid.UUID]:
    rows = await session.scalars(
        select(UserRole.user_id).join(User, User.id == UserRole.user_id)
        .where(UserRole.role_name == "super_admin", User.is_active.is_(True))
    )
    return list(rows)
