"""Who may open a console page: the same permission the API route of the action declares.

``console_actor(Permission.x)`` is the page twin of ``access.dependencies.requires``: signed
in through the page session (else the sign-in page), holding ``x`` (else the audited 403
page, as the API's refusal is audited). Row scoping (own publisher, own tasks) stays in the
services, exactly as for the API.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.dependencies import _audit_denied
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.kit.errors import Forbidden, MercatoError
from mercato.web import session as page_session
from mercato.web.pages import field_errors, render


def console_actor(permission: Permission) -> Any:
    async def allowed(request: Request) -> Principal:
        user = await page_session.signed_in(request)
        principal = user.principal
        if principal.condition_for(permission) is None:
            await _audit_denied(request, principal, permission)
            raise Forbidden(f"This page needs the permission {permission.value!r}, which your account does not have.")
        return principal

    return Depends(allowed)


async def discard(session: AsyncSession) -> None:
    """Nothing of a refused action is kept: its write transaction is rolled back (the page
    after it is built from a read session, ``rt.db.read_session()``)."""
    if session.in_transaction():
        await session.rollback()


async def refused(request: Request, error: MercatoError, template: str, context: dict[str, Any]) -> Any:
    """The page again with the reason beside the form and the person's input, answered with
    the problem's status (call ``discard`` on the write session first)."""
    return await render(request, template, {**context, "error": error.detail or error.title,
                                            "errors": field_errors(error)}, status_code=error.status)
