"""Matrix rows (A2/A3) of the key pool and licence routes (M12, L1).

Key pools belong to the listing's publisher: members of ``mine`` (the developer) and
admins manage them; the other developer holds the permission but gets 404 for a listing
of ``mine``, even a published one; callers without the permission get 403. A licence is
the caller's own: 200 with an active entitlement, 404 without one.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.access.matrix import (
    ADMINS,
    DEV,
    OTHER_DEV,
    V1,
    Row,
    World,
    caller,
    only,
    signed_in,
    static,
)
from tests.access.matrix_rows_library import a_listing, entitle

KEYS = f"{V1}/listings/{{listing_id}}/keys"
LICENCE = f"{V1}/library/{{listing_id}}/license"
KEY_MANAGERS = (DEV, *ADMINS)


def on_pool(*, json: dict[str, Any] | None = None) -> Any:
    """The key pool of a fresh, published, paid listing of ``mine``."""
    async def make(world: World, who: str) -> dict[str, Any]:
        listing = await a_listing(world, price=900)
        return {"url": f"{V1}/listings/{listing['id']}/keys", **({"json": json} if json else {})}

    return make


def licence_of(entitled: bool) -> Any:
    async def make(world: World, who: str) -> dict[str, Any]:
        listing = await a_listing(world, price=900)
        if entitled:
            await entitle(world, caller(world, who).id, listing["id"])
        return {"url": f"{V1}/library/{listing['id']}/license"}

    return make


UPLOAD = {"keys": ["MATRIX-1", "MATRIX-2"]}

MATRIX_ROWS: list[Row] = [
    Row("upload keys to own listing / other's (A3: 404)", "POST", KEYS,
        {**only(*KEY_MANAGERS, status=201), OTHER_DEV: 404}, on_pool(json=UPLOAD)),
    Row("upload keys to an unknown listing", "POST", KEYS, {**only(*KEY_MANAGERS, status=404), OTHER_DEV: 404},
        static(f"{V1}/listings/{uuid.uuid4()}/keys", json=UPLOAD)),
    Row("key pool counts of own listing / other's (A3: 404)", "GET", KEYS,
        {**only(*KEY_MANAGERS, status=200), OTHER_DEV: 404}, on_pool()),
    Row("key pool counts of an unknown listing", "GET", KEYS, {**only(*KEY_MANAGERS, status=404), OTHER_DEV: 404},
        static(f"{V1}/listings/{uuid.uuid4()}/keys")),
    Row("own licence", "GET", LICENCE, signed_in(200), licence_of(entitled=True)),
    Row("licence of a listing not owned (A3)", "GET", LICENCE, signed_in(404), licence_of(entitled=False)),
    Row("licence of an unknown listing", "GET", LICENCE, signed_in(404),
        static(f"{V1}/library/{uuid.uuid4()}/license")),
]
