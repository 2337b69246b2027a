"""The web pages: the storefront and the consoles (WEB.md), a second face of the same services.

``pages.py`` holds the shared machinery (templates, the page route class, security headers,
error pages), ``session.py`` the cookie sessions, ``csrf.py`` the form tokens. Each group of
pages is a router module (``storefront.py``, ``account.py``, …) registered in ``ROUTERS``.
See docs/web.md.
"""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    """Every page router, in the order app.py includes them."""
    # the page modules import web.pages: loaded when the routers are included
    from mercato.web import (
        account,
        artwork,
        cart,
        console,
        instances,
        library,
        notifications,
        orders,
        storefront,
        wallet,
    )

    return [storefront.router, account.router, artwork.router, cart.router, orders.router, wallet.router,
            library.router, instances.router, notifications.router, *console.routers()]
