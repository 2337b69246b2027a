"""Who may open a console page: the same permission the API route of the action declares.

``console_actor(Permission.x)`` is the foundation's ``page_requires`` (signed in, else the
sign-in page; holding ``x``, else the audited 403 page) handing the services their
``Principal``. Row scoping (own publisher, own tasks) stays in the services, as for the API.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.kit.errors import MercatoError
from mercato.web.pages import field_errors, render
from mercato.web.session import PageUser, page_requires


def console_actor(permission: Permission) -> Any:
    """The foundation's ``page_requires(permission)``, giving the ``Principal`` the services take."""
    allowed = page_requires(permission)

    async def principal(user: PageUser = allowed) -> Principal:
        return user.principal

    return Depends(principal)


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
