"""The signed-in person's ``Principal`` behind a permission, for pages that hand it to services
as ``actor``: ``session.page_requires`` (sign-in redirect, the 403 page, the audit of a
refusal) with the principal taken out, so a handler reads like the API endpoint it mirrors."""

# No ``from __future__ import annotations`` here: FastAPI must see the dependency below as an
# object, and ``permission`` is local to ``permitted()``.
from typing import Annotated, Any

from fastapi import Depends

from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.web.session import PageUser, page_requires


def permitted(permission: Permission) -> Any:
    async def principal(user: Annotated[PageUser, page_requires(permission)]) -> Principal:
        return user.principal

    return Depends(principal)
