"""Roles and their permissions: read by admins, edited by super admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from mercato.access import service
from mercato.access.dependencies import requires
from mercato.access.errors import RoleLocked, UnknownPermission
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.access.schemas import RolePut, RoleRead
from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.kit.routing import ReadSession, TransactionalRoute, WriteSession

router = APIRouter(route_class=TransactionalRoute, tags=["admin"], prefix="/admin")


@router.get("/roles", response_model=list[RoleRead])
async def list_roles(actor: Annotated[Principal, requires(Permission.role_read)], session: ReadSession) -> list[RoleRead]:
    """Every role with its permissions and their conditions."""
    return [RoleRead(name=role.name, description=role.description, is_system=role.is_system,
                     permissions={g.permission: g.condition for g in grants})  # type: ignore[misc]
            for role, grants in await service.list_roles(session)]


@router.get("/permissions", response_model=list[str])
async def list_permissions(actor: Annotated[Principal, requires(Permission.role_read)]) -> list[str]:
    """Every permission this store knows, for building roles."""
    return sorted(p.value for p in Permission)


@router.put("/roles/{name}", response_model=RoleRead, responses=UnknownPermission.responses(RoleLocked))
async def put_role(name: Annotated[str, Path(max_length=64)], body: RolePut, session: WriteSession,
                   actor: Annotated[Principal, requires(Permission.role_update)]) -> RoleRead:
    """Create a role or replace its permissions (super admins). Takes effect on the next request
    of every holder."""
    role, grants, before, created = await service.put_role(session, name=name, description=body.description,
                                                           grants=body.permissions)
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.role_update,
                resource_type="role", resource_id=name, before=None if created else {"permissions": before},
                after={"permissions": body.permissions})
    return RoleRead(name=role.name, description=role.description, is_system=role.is_system,
                    permissions={g.permission: g.condition for g in grants})  # type: ignore[misc]
