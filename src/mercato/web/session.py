"""Cookie sessions for the pages, on the same refresh-token family as the API.

Signing in on a page starts a session exactly as ``POST /api/v1/auth/login`` does; the
``mercato_session`` cookie (HttpOnly, SameSite=Lax, Secure over https) carries that
session's refresh token. A page request is signed in while the token is valid: not
expired, not rotated and not revoked. So everything that ends API sessions ends page
sessions too (sign-out, a password change, an admin disabling the account), and signing
out on a page (``POST /logout``) revokes the family like the API's logout.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Response

from mercato.access import service as access
from mercato.access.dependencies import _audit_denied as audit_denied
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.accounts import service as accounts
from mercato.kit.errors import Forbidden
from mercato.notifications import service as notifications
from mercato.platform.routing import get_runtime

COOKIE = "mercato_session"


@dataclass(frozen=True)
class PageUser:
    """The signed-in person on a page: the same Principal the API builds, plus what the header shows."""

    principal: Principal
    display_name: str
    refresh_token: str
    unread: int

    @property
    def name(self) -> str:
        return self.display_name or self.principal.email


async def current_user(request: Request) -> PageUser | None:
    """The signed-in person, or None (looked up once per request)."""
    if hasattr(request.state, "page_user"):
        return request.state.page_user  # type: ignore[no-any-return]
    request.state.page_user = None
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    rt = get_runtime(request)
    async with rt.db.read_session() as session:
        user = await accounts.session_user(session, refresh_token=token)
        if user is None:
            return None
        roles, grants = await access.grants_for_user(session, user.id)
        unread = await notifications.unread_count(session, user.id)
    principal = Principal(user_id=user.id, email=user.email, roles=roles, grants=grants, kind="user")
    request.state.page_user = PageUser(principal=principal, display_name=user.display_name,
                                       refresh_token=token, unread=unread)
    return request.state.page_user  # type: ignore[no-any-return]


class SignInRequired(Exception):
    """A page for signed-in people was asked for without a session: answered with a redirect to /login."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def safe_next(value: str | None, default: str = "/") -> str:
    """Only a path on this site (no scheme, no host, no ``//``): an open redirect otherwise."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")) or any(
            c in value for c in "\r\n\\"):
        return default
    return value


def login_url(next_path: str) -> str:
    return "/login?" + urllib.parse.urlencode({"next": safe_next(next_path)})


async def signed_in(request: Request) -> PageUser:
    user = await current_user(request)
    if user is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(path if request.method == "GET" else "/")
    return user


def page_requires(permission: Permission) -> Any:
    """Signed in (else to /login and back) and holding ``permission`` (else the 403 page, audited
    like the API's refusal)."""
    async def authorize(request: Request) -> PageUser:
        user = await signed_in(request)
        if user.principal.condition_for(permission) is None:
            await audit_denied(request, user.principal, permission)
            raise Forbidden(f"This needs the permission {permission.value!r}.")
        return user

    return Depends(authorize)


OptionalUser = Annotated[PageUser | None, Depends(current_user)]
SignedIn = Annotated[PageUser, Depends(signed_in)]


def set_session_cookie(request: Request, response: Response, refresh_token: str) -> None:
    rt = get_runtime(request)
    response.set_cookie(COOKIE, refresh_token, max_age=rt.settings.refresh_token_days * 86400, path="/",
                        httponly=True, samesite="lax", secure=request.url.scheme == "https")


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=request.url.scheme == "https")
