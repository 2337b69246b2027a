"""Forms that must act once: the page's ``Idempotency-Key`` (API.md conventions) in a hidden field.

A page that buys or pays renders a fresh key into its form (``new_key()``); the handler
claims it with ``claim(request, actor, key)`` before it touches the write session, through
the same ``platform/idempotency`` records as the API's ``Idempotency-Key`` header. The route
stores the answer (a redirect) in the request's own transaction, so:

- a double click sends the key twice: the second request waits while the first runs, then
  gets the same redirect (``Idempotent-Replayed``) and nothing is bought twice;
- a reload of the result page is a GET and repeats nothing (POST → redirect → GET);
- a refused form (4xx) is not stored: the person corrects it and sends it again.
"""

from __future__ import annotations

import asyncio
import secrets
import urllib.parse
from datetime import timedelta

from fastapi import Request

from mercato.access.principal import Principal
from mercato.kit.waiting import poll_until
from mercato.platform import idempotency
from mercato.platform.routing import get_runtime
from mercato.web import csrf

FIELD = "idempotency_key"
WAIT_SECONDS = 15.0


def new_key() -> str:
    return "page-" + secrets.token_urlsafe(18)


async def _fingerprint(request: Request) -> str:
    """Method, path and the form's fields (not the CSRF token), in a stable order."""
    form = await request.form()
    fields = sorted((name, value) for name, value in form.multi_items()
                    if name != csrf.FIELD and isinstance(value, str))
    return idempotency.fingerprint(request.method, request.url.path, urllib.parse.urlencode(fields).encode())


async def claim(request: Request, actor: Principal, key: str | None) -> None:
    """Claim the form's key for this request; raise ``idempotency.Replay`` with the stored
    answer when it was done already (a second click that arrives while the first still runs
    waits for it, up to ``WAIT_SECONDS``)."""
    checked = idempotency.validate_key(key, required=True)
    assert checked is not None
    rt = get_runtime(request)
    request_hash = await _fingerprint(request)

    async def claimed() -> bool | None:
        try:
            request.state.idempotency_claim = await idempotency.claim(
                rt.db, owner=f"user:{actor.user_id}", key=checked, request_hash=request_hash,
                retention=timedelta(hours=rt.settings.idempotency_retention_hours),
                lease=timedelta(seconds=rt.settings.idempotency_lease_seconds))
        except idempotency.IdempotencyKeyInFlight:
            return None  # the first click still runs: ask again
        return True

    if not await poll_until(claimed, deadline=asyncio.get_running_loop().time() + WAIT_SECONDS, interval=0.1):
        raise idempotency.IdempotencyKeyInFlight()
