"""Roles and grants: seeding, editing (super admins) and building a caller's grants."""

from __future__ import annotations

import re
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access import repository
from mercato.access.errors import RoleLocked, RoleNotFound, UnknownPermission, UnknownRole
from mercato.access.permissions import CONDITION_BREADTH, Condition, Permission
from mercato.access.principal import Principal, merge_grants
from mercato.access.seeds import DEFAULT_ROLES, PRIVILEGED_ROLES, SIGN_UP_ROLE
from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.kit.errors import found_or_raise
from mercato.models import Role, RoleGrant

ROLE_NAME = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
# The role that holds everything: narrowing it could leave no one able to edit roles again.
LOCKED_ROLE = "super_admin"


async def seed_roles(session: AsyncSession) -> None:
    """Create missing system roles; grant permissions new to the code to their default roles."""
    known = await repository.known_permissions(session)
    for name, (description, grants) in DEFAULT_ROLES.items():
        role = await repository.get_role(session, name)
        if role is None:
            await repository.add_role(session, name=name, description=description, is_system=True)
            await repository.add_grants(session, name, {p.value: c.value for p, c in grants.items()})
        else:
            new = {p.value: c.value for p, c in grants.items() if p.value not in known}
            await repository.add_grants(session, name, new)
    await repository.mark_known(session, [p.value for p in Permission if p.value not in known])


async def grants_for_user(session: AsyncSession, user_id: uuid.UUID) -> tuple[frozenset[str], dict[str, Condition]]:
    roles = await repository.roles_of(session, user_id)
    return frozenset(roles), merge_grants(await repository.grants_of_roles(session, roles))


async def list_roles(session: AsyncSession) -> list[tuple[Role, list[RoleGrant]]]:
    return await repository.list_roles(session)


async def get_role(session: AsyncSession, name: str) -> tuple[Role, list[RoleGrant]]:
    role = found_or_raise(await repository.get_role(session, name), RoleNotFound, f"There is no role named {name!r}.")
    return role, await repository.grants_of_role(session, name)


def validate_grants(grants: dict[str, str]) -> dict[str, str]:
    valid_permissions = {p.value for p in Permission}
    valid_conditions = {c.value for c in Condition}
    errors = []
    for permission, condition in grants.items():
        if permission not in valid_permissions:
            errors.append({"loc": ["body", "permissions", permission], "msg": "unknown permission",
                           "type": "unknown_permission"})
        if condition not in valid_conditions:
            errors.append({"loc": ["body", "permissions", permission],
                           "msg": f"condition must be one of {sorted(valid_conditions)}", "type": "unknown_condition"})
    if errors:
        raise UnknownPermission("Some permissions or conditions are not known to this store.", errors=errors)
    return grants


async def edit_role(session: AsyncSession, *, actor: Principal, name: str, description: str | None,
                    grants: dict[str, str]) -> tuple[Role, list[RoleGrant]]:
    """A super admin creates a role or replaces its permissions (:func:`put_role`), audited as
    ``role:update``; the API and the admin console both edit roles through here. Returns the
    role and its grants."""
    role, granted, before, created = await put_role(session, name=name, description=description, grants=grants)
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.role_update,
                resource_type="role", resource_id=name, before=None if created else {"permissions": before},
                after={"permissions": grants})
    return role, granted


async def put_role(session: AsyncSession, *, name: str, description: str | None,
                   grants: dict[str, str]) -> tuple[Role, list[RoleGrant], dict[str, str], bool]:
    """Create or replace a role's grants. Returns the role, its grants, the grants before, and whether it is new."""
    if not ROLE_NAME.match(name):
        raise UnknownPermission("Role names are 2–64 characters: lowercase letters, digits and _.",
                                errors=[{"loc": ["path", "name"], "msg": "invalid role name", "type": "value_error"}])
    validate_grants(grants)
    if name == LOCKED_ROLE and grants != {p.value: Condition.any.value for p in Permission}:
        raise RoleLocked(f"The {LOCKED_ROLE} role always holds every permission with the condition 'any'; "
                         "create another role for narrower rights.")
    role = await repository.get_role(session, name)
    created = role is None
    before: dict[str, str] = {}
    if role is None:
        role = await repository.add_role(session, name=name, description=description or "", is_system=False)
    else:
        before = {g.permission: g.condition for g in await repository.grants_of_role(session, name)}
        if description is not None:
            role.description = description
    await repository.replace_grants(session, name, grants)
    await publish(session, CloudEvent(type="role.changed", subject=name, data={"role": name, "permissions": grants}))
    return role, await repository.grants_of_role(session, name), before, created


async def role_exists(session: AsyncSession, name: str) -> bool:
    return await repository.get_role(session, name) is not None


async def set_user_roles(session: AsyncSession, user_id: uuid.UUID, roles: list[str]) -> None:
    unknown = [name for name in dict.fromkeys(roles) if not await role_exists(session, name)]
    if unknown:
        raise UnknownRole(f"There is no role named {unknown[0]!r}; GET /admin/roles lists them.",
                          errors=[{"loc": ["body", "roles"], "msg": f"unknown role {name!r}", "type": "unknown_role"}
                                  for name in unknown])
    await repository.set_user_roles(session, user_id, roles)
    await publish(session, CloudEvent(type="user.roles_changed", subject=str(user_id),
                                      data={"user_id": str(user_id), "roles": sorted(set(roles))}))


async def grant_role(session: AsyncSession, user_id: uuid.UUID, role: str) -> bool:
    added = await repository.add_user_role(session, user_id, role)
    if added:
        roles = await repository.roles_of(session, user_id)
        await publish(session, CloudEvent(type="user.roles_changed", subject=str(user_id),
                                          data={"user_id": str(user_id), "roles": roles}))
    return added


async def ensure_roles_exist(session: AsyncSession, roles: list[str]) -> None:
    missing = [name for name in sorted(set(roles)) if not await role_exists(session, name)]
    if missing:
        raise UnknownRole(f"There is no role named {missing[0]!r}.", errors=[
            {"loc": ["body", "roles"], "msg": f"unknown role {name!r}", "type": "unknown_role"} for name in missing])


async def roles_beyond(session: AsyncSession, grants: dict[str, Condition], role_names: list[str]) -> list[str]:
    """The roles among ``role_names`` the caller may not hand out: admin roles need a
    super admin (``role:update``), and no role may carry more than the caller holds.

    ``grants`` are the caller's effective grants (``Principal.effective_grants()``): an API token
    scoped ``user:create`` holds only that, whatever its owner's roles."""
    beyond = set(await _roles_carrying_more(session, grants, role_names))
    if grants.get(Permission.role_update.value) is not Condition.any:
        beyond |= set(role_names) & PRIVILEGED_ROLES
    return sorted(beyond)


async def _roles_carrying_more(session: AsyncSession, grants: dict[str, Condition],
                               role_names: list[str]) -> list[str]:
    """The roles among ``role_names`` that grant more than ``grants`` (a permission the caller
    lacks, or holds only under a narrower condition). A caller may hand out only what they hold:
    checking role names alone would let an admin grant a custom role that carries role:update."""
    names = sorted(set(role_names) - {SIGN_UP_ROLE})
    held = {permission: CONDITION_BREADTH[condition] for permission, condition in grants.items()}
    beyond = set()
    for name in names:
        for permission, condition in await repository.grants_of_roles(session, [name]):
            if held.get(permission, -1) < CONDITION_BREADTH[Condition(condition)]:
                beyond.add(name)
    return sorted(beyond)


async def roles_of(session: AsyncSession, user_id: uuid.UUID) -> list[str]:
    return await repository.roles_of(session, user_id)


async def roles_of_users(session: AsyncSession, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    return await repository.roles_of_users(session, user_ids)


async def active_super_admins(session: AsyncSession) -> list[uuid.UUID]:
    return await repository.active_super_admins(session)
