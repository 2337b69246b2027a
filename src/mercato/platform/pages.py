"""Server-rendered pages for routes that live outside ``web`` (the printable receipt, the sandbox's
pay page): they render through here, and the web layer hands in its renderer (the store's layout,
the signed-in user, the CSRF token, the template filters) when it is installed on the app
(``web.pages.install``). The platform does not import the web layer, which builds on every module.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response


class PageRenderer(Protocol):
    def __call__(self, request: Request, name: str, context: dict[str, Any] | None = None, *,
                 status_code: int = 200, headers: dict[str, str] | None = None) -> Awaitable[Response]: ...


class _Pages:
    renderer: PageRenderer | None = None


def register_renderer(renderer: PageRenderer) -> None:
    _Pages.renderer = renderer


async def render(request: Request, name: str, context: dict[str, Any] | None = None, *,
                 status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """The template ``name`` (under web/templates) in the store's layout."""
    if _Pages.renderer is None:
        raise RuntimeError("No page renderer registered: web.pages.install(app) registers the web layer's.")
    return await _Pages.renderer(request, name, context, status_code=status_code, headers=headers)
