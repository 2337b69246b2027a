"""The web pages put together: every page router in the order the app includes them, and
:func:`install`, which mounts them with the static files into the app. It sits above every
page module (they all import ``web.pages``), so it imports them all up front."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from mercato.web import (
    account,
    apidocs,
    artwork,
    cart,
    instances,
    library,
    live,
    notifications,
    orders,
    pages,
    storefront,
    wallet,
)
from mercato.web.console import admin, admin_store, review
from mercato.web.console.publisher import (
    coupons,
    earnings,
    licence_keys,
    listings,
    members,
    overview,
    versions,
    webhooks,
)
from mercato.web.console.publisher import orders as publisher_orders


def routers() -> list[APIRouter]:
    """Every page router, in the order the app includes them."""
    return [storefront.router, account.router, artwork.router, cart.router, orders.router, wallet.router,
            library.router, instances.router, notifications.router, live.router,
            review.router, admin.router, admin_store.router, overview.router, listings.router, versions.router,
            licence_keys.router, publisher_orders.router, earnings.router, coupons.router, members.router,
            webhooks.router]


def install(app: FastAPI) -> None:
    """Static files, the pages' routers, security headers and error pages (after install_error_handlers)."""
    app.mount("/static", StaticFiles(directory=pages.HERE / "static"), name="static")
    app.include_router(apidocs.router)
    for router in routers():
        app.include_router(router)
    pages.install(app)
