"""What every page shares: templates, the page route class and router, security headers,
error pages in the layout, and ``install(app)`` that wires it all into the app.

A page handler does what an endpoint does (parse, authorize, call the service) and answers
with ``await render(request, "template.html", {...})``. See docs/web.md.
"""

from __future__ import annotations

import json
import re
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mercato import __version__
from mercato.kit.errors import MercatoError
from mercato.kit.http import BodyRule
from mercato.kit.logging import log
from mercato.kit.markdown import render_markdown
from mercato.kit.money import format_money
from mercato.platform import pages as platform_pages
from mercato.platform.routing import TransactionalRoute, routes_with_paths
from mercato.web import csrf, once, session

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
# The templates ship with the code: a change needs a restart like the code's, so Jinja need not
# stat every template (and each one it extends or imports) on every render to see if it changed.
templates.env.auto_reload = False
templates.env.globals.update(version=__version__)
templates.env.filters["markdown"] = render_markdown
templates.env.filters["money"] = lambda money: format_money(money.amount, money.currency)

# Paths that are not pages: the API and protocol routes keep their own answers (problem JSON).
NOT_PAGES = re.compile(r"^/(api/|openvsx(/|$)|sandbox/|metrics$|healthz$|readyz$|static/)")

# Images may come from any https host: publishers link their icons and screenshots (the API
# takes http(s) URLs), and an image cannot run script. The pages send no referrer with them.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; font-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'")

# Page forms: url-encoded or multipart bodies (the API takes JSON only), small.
FORM_RULE = BodyRule(re.compile(r"^/(?!api/|openvsx|sandbox/)"), max_bytes=64 * 1024,
                     content_types=("application/x-www-form-urlencoded", "multipart/form-data"))


def is_page_path(path: str) -> bool:
    return NOT_PAGES.match(path) is None


class PageRoute(TransactionalRoute):
    """A page: owns its transaction like an API route, but is no part of the API (not in the
    OpenAPI document, the access matrix or the policy table; its own dependencies decide)."""

    is_page = True  # access.dependencies.api_routes() leaves these out


def page_router(**kwargs: Any) -> APIRouter:
    """A router of pages: the PageRoute class, kept out of the API schema, CSRF-checked on every unsafe method."""
    return APIRouter(route_class=PageRoute, include_in_schema=False,
                     dependencies=[Depends(csrf.check_csrf), *kwargs.pop("dependencies", [])], **kwargs)


async def render(request: Request, name: str, context: dict[str, Any] | None = None, *,
                 status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A template rendered in the layout, with the signed-in user and this browser's CSRF token."""
    try:
        user = await session.current_user(request)
    except Exception as exc:  # an error page must render even when the database is what failed
        log.warning("no user for the page", error=str(exc))
        user = None
    values = {"request": request, "user": user, "csrf_token": csrf.token(request),
              "query": request.query_params.get("q", "") if request.scope["path"] == "/search" else "",
              **(context or {})}
    response = templates.TemplateResponse(request, name, values, status_code=status_code, headers=headers)
    _give_csrf_cookie(request, response)
    return response


def _give_csrf_cookie(request: Request, response: Response) -> None:
    """The browser's first page sets the CSRF cookie its forms' tokens are bound to."""
    new_cookie = getattr(request.state, "csrf_cookie", None)
    if new_cookie and not request.cookies.get(csrf.COOKIE):
        response.set_cookie(csrf.COOKIE, new_cookie, path="/", httponly=True, samesite="lax",
                            secure=request.scope.get("scheme") == "https")


# --- pages the same for every anonymous reader ---------------------------------------------------

# Stand-ins rendered into a shared page where each answer needs its own value: the browser's CSRF
# token and a fresh idempotency key for a buying form. Random per process: no content can carry them.
CSRF_STAND_IN = "csrf-" + secrets.token_hex(16)
ONCE_STAND_IN = "once-" + secrets.token_hex(16)
_SHARED: OrderedDict[Hashable, str] = OrderedDict()
SHARED_PAGES = 128  # ~30 kB each at most


async def render_shared(request: Request, name: str, context: dict[str, Any], *, key: Hashable) -> Response:
    """A page that every anonymous reader sees alike but for its CSRF token and idempotency key:
    rendered once per ``key`` in this process, then each answer fills in its own token and key.
    The caller's ``key`` must change whenever anything the page shows changes (the data's ETag).
    Rendering a listing page costs ~2.5 ms of CPU; a replace in the rendered text ~20 µs."""
    answer = answer_shared(request, key)
    if answer is not None:
        return answer
    values = {"request": request, "user": None, "csrf_token": CSRF_STAND_IN, "query": "",
              once.FIELD: ONCE_STAND_IN, **context}
    _SHARED[key] = templates.get_template(name).render(values)
    if len(_SHARED) > SHARED_PAGES:
        _SHARED.popitem(last=False)
    return _fill_in(request, _SHARED[key])


def answer_shared(request: Request, key: Hashable) -> Response | None:
    """The page ``render_shared`` keeps under ``key``, with this reader's token and key; None if none."""
    text = _SHARED.get(key)
    if text is None:
        return None
    _SHARED.move_to_end(key)
    return _fill_in(request, text)


def _fill_in(request: Request, text: str) -> Response:
    response = HTMLResponse(text.replace(CSRF_STAND_IN, csrf.token(request)).replace(ONCE_STAND_IN, once.new_key()))
    _give_csrf_cookie(request, response)
    return response


def redirect(url: str) -> RedirectResponse:
    """After a successful form post: see the result with a GET (303)."""
    return RedirectResponse(url, status_code=303)


def field_errors(error: MercatoError) -> dict[str, str]:
    """The per-field messages of a problem (``errors[].loc``) keyed by the form field's name."""
    out: dict[str, str] = {}
    for item in error.errors or []:
        loc = item.get("loc") or []
        if loc:
            out.setdefault(str(loc[-1]), str(item.get("msg", "")))
    return out


# --- headers ---------------------------------------------------------------------------------

class SecurityHeaders:
    """Every HTML answer gets the Content-Security-Policy (no inline scripts) and every answer
    ``X-Content-Type-Options: nosniff``; a route may set a stricter or looser CSP itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if content_type.startswith(b"text/html"):
                    if b"content-security-policy" not in names:
                        headers.append((b"content-security-policy", CSP.encode()))
                    if b"referrer-policy" not in names:
                        headers.append((b"referrer-policy", b"same-origin"))
                    if b"x-frame-options" not in names:
                        headers.append((b"x-frame-options", b"DENY"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --- error pages ------------------------------------------------------------------------------

Handler = Callable[[Request, Exception], Awaitable[Response]]


def _as_page(original: Handler) -> Handler:
    """The app's error handler, but a page path gets the problem rendered in the layout."""
    async def handle(request: Request, exc: Exception) -> Response:
        response = await original(request, exc)
        if not is_page_path(request.url.path) or not isinstance(response, JSONResponse):
            return response
        try:
            problem = json.loads(bytes(response.body))
        except ValueError:
            return response
        headers = {k: v for k, v in response.headers.items() if k.lower() in ("retry-after", "allow")}
        # A 500 is answered by Starlette's outermost middleware, outside SecurityHeaders: set them here.
        headers.update({"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"})
        return await render(request, "error.html", {"problem": problem}, status_code=response.status_code,
                            headers=headers)

    return handle


async def _to_sign_in(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, session.SignInRequired)
    return redirect(session.login_url(exc.next_path))


def install(app: FastAPI) -> None:
    """Error pages, security headers and the page renderer (after install_error_handlers);
    ``web.site.install`` mounts the static files and the pages' routers, then calls this."""
    for key, handler in list(app.exception_handlers.items()):
        app.exception_handlers[key] = _as_page(handler)
    app.exception_handlers[session.SignInRequired] = _to_sign_in
    app.add_middleware(SecurityHeaders)
    platform_pages.register_renderer(render)  # the pages of routes outside web (receipt, sandbox pay page)


def page_routes(app: FastAPI) -> list[tuple[str, APIRoute]]:
    """Every page route with its full path."""
    return [(path, route) for path, route in routes_with_paths(app.routes) if isinstance(route, PageRoute)]


def form_values(form: Any, *names: str) -> dict[str, str]:
    """The named text fields of a submitted form (missing ones empty), to validate and to re-show."""
    out: dict[str, str] = {}
    for name in names:
        value = form.get(name)
        out[name] = value if isinstance(value, str) else ""
    return out


def validation_messages(error: Exception) -> dict[str, str]:
    """A pydantic ValidationError's messages keyed by field name, worded for people."""
    out: dict[str, str] = {}
    if isinstance(error, ValidationError):
        for item in error.errors():
            loc = item.get("loc") or ("form",)
            message = str(item.get("msg", "Invalid value"))
            out.setdefault(str(loc[0]), message.removeprefix("Value error, "))
    return out
