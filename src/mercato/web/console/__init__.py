"""The consoles (WEB.md, PRODUCT.md U2–U4): publishers, reviewers and admins run the store in the browser.

Each page module is a router of pages under ``/console/``; every action calls the same service
as its API route, behind the same permission (``access.console_actor``). A person without the
permission gets the 403 page, someone not signed in the sign-in page.
"""

from __future__ import annotations

import re

from fastapi import APIRouter

from mercato.config import Settings
from mercato.kit.http import BodyRule

# Version uploads from the publisher console: as large as the API allows, multipart only.
UPLOAD_PATH = re.compile(r"^/console/publisher/[^/]+/listings/[^/]+/versions$")


def upload_rule(settings: Settings) -> BodyRule:
    return BodyRule(UPLOAD_PATH, max_bytes=settings.package_max_bytes + 64 * 1024,
                    content_types=("multipart/form-data",))


def routers() -> list[APIRouter]:
    # the page modules import web.pages: loaded when the routers are included
    from mercato.web.console import admin, admin_store, review
    from mercato.web.console.publisher import (
        coupons,
        earnings,
        licence_keys,
        listings,
        members,
        orders,
        overview,
        versions,
        webhooks,
    )

    return [review.router, admin.router, admin_store.router, overview.router, listings.router, versions.router,
            licence_keys.router, orders.router, earnings.router, coupons.router, members.router, webhooks.router]
