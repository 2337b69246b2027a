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
from mercato.kit.pagination import CursorParam, Limit, page_of
from mercato.kit.schemas import Page
from mercato.platform.routing import ReadSession, TransactionalRoute, WriteSession

router = APIRouter(route_class=TransactionalRoute, tags=["admin"], prefix="/admin")


@router.get("/roles", response_model=Page[RoleRead])
async def list_roles(actor: Annotated[Principal, requires(Permission.role_read)], session: ReadSession,
                     cursor: CursorParam = None, limit: Limit = 20) -> Page[RoleRead]:
    """Every role with its permissions and their conditions, by name."""
    page, next_cursor = page_of(await service.list_roles(session), key=lambda pair: (pair[0].name,),
                                cursor=cursor, limit=limit)
    return Page(items=[RoleRead(name=role.name, description=role.description, is_system=role.is_system,
                                permissions={g.permission: g.condition for g in grants})  # type: ignore[misc]
                       for role, grants in page], next_cursor=next_cursor)


@router.get("/permissions", response_model=Page[str])
async def list_permissions(actor: Annotated[Principal, requires(Permission.role_read)],
                           cursor: CursorParam = None, limit: Limit = 100) -> Page[str]:
    """Every permission this store knows, for building roles, alphabetically (100 a page by default)."""
    page, next_cursor = page_of([p.value for p in Permission], key=lambda name: (name,), cursor=cursor, limit=limit)
    return Page(items=page, next_cursor=next_cursor)


@router.put("/roles/{name}", response_model=RoleRead, responses=UnknownPermission.responses(RoleLocked))
async def put_role(name: Annotated[str, Path(max_length=64)], body: RolePut, session: WriteSession,
                   actor: Annotated[Principal, requires(Permission.role_update)]) -> RoleRead:
    """Create a role or replace its permissions (super admins). Takes effect on the next request
    of every holder."""
    role, grants = await service.edit_role(session, actor=actor, name=name, description=body.description,
                                           grants=body.permissions)
    return RoleRead(name=role.name, description=role.description, is_system=role.is_system,
                    permissions={g.permission: g.condition for g in grants})  # type: ignore[misc]
