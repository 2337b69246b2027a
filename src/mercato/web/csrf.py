"""CSRF tokens for every unsafe form.

A random ``mercato_csrf`` cookie (HttpOnly, SameSite=Lax) binds the browser; the token in
a form's hidden ``csrf_token`` field (or an htmx request's ``X-CSRF-Token`` header) is an
HMAC of that cookie under the store's secret key, so another site can neither read nor
forge it. ``check_csrf`` runs on every page route (the page router adds it): safe methods
pass, any other request without a matching token is refused with the 403 page.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request

from mercato.kit.errors import Forbidden
from mercato.platform.routing import get_runtime

COOKIE = "mercato_csrf"
FIELD = "csrf_token"
HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfRefused(Forbidden):
    code, title = "csrf_refused", "This form has expired"


def _binding(request: Request) -> str:
    """The browser's CSRF cookie value; a new one (set on the response by ``render``) if none yet."""
    value = request.cookies.get(COOKIE) or getattr(request.state, "csrf_cookie", None)
    if not value:
        value = request.state.csrf_cookie = secrets.token_urlsafe(24)
    return value


def _sign(request: Request, binding: str) -> str:
    key = get_runtime(request).settings.resolved_secret_key.encode()
    return hmac.new(key, b"csrf|" + binding.encode(), hashlib.sha256).hexdigest()


def token(request: Request) -> str:
    """The token to put in this browser's forms."""
    return _sign(request, _binding(request))


async def check_csrf(request: Request) -> None:
    """Refuse an unsafe request whose form (or header) does not carry this browser's token."""
    if request.method in SAFE_METHODS:
        return
    binding = request.cookies.get(COOKIE)
    offered = request.headers.get(HEADER)
    if offered is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            value = (await request.form()).get(FIELD)
            offered = value if isinstance(value, str) else None
    if not binding or not offered or not hmac.compare_digest(offered, _sign(request, binding)):
        raise CsrfRefused("The form was missing its security token or it has expired. "
                          "Go back, reload the page and send it again.")
