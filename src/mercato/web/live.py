"""``GET /live/{subject}``: a page's live wire (U1: an order's live status, a task's progress bar).

Server-Sent Events about one subject (an order, an install task) of the signed-in person:
``ready`` once subscribed, then ``changed`` for each of their events whose subject it is. The
page (site.js, ``data-live``) refreshes the part that shows the subject on each, so a change
shows as it happens. The events are those of the API's ``/api/v1/events/stream`` (the live
hub), reached with the page's cookie session instead of a bearer token; only the event type
goes to the page, which reads the rest through its own routes. The page keeps a slow poll, so
nothing is lost if the stream drops; the stream ends after ``STREAM_SECONDS`` (or when the hub
may have lost messages) and the browser reconnects."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

from fastapi import Request
from sse_starlette.sse import EventSourceResponse

from mercato.live.hub import RESET
from mercato.platform.routing import get_runtime
from mercato.web.pages import page_router
from mercato.web.session import SignedIn

router = page_router()
STREAM_SECONDS = 300.0


@router.get("/live/{subject}")
async def live(request: Request, subject: uuid.UUID, user: SignedIn) -> EventSourceResponse:
    rt = get_runtime(request)
    wanted = str(subject)

    async def changes() -> AsyncIterator[dict[str, str]]:
        loop = asyncio.get_running_loop()
        ends = loop.time() + STREAM_SECONDS
        async with rt.live.subscribe(user.principal.user_id) as queue:
            # subscribed: the page refreshes once, for a change between its drawing and now
            yield {"event": "ready", "data": wanted}
            while (left := ends - loop.time()) > 0:
                try:
                    message = await asyncio.wait_for(queue.get(), timeout=left)
                except TimeoutError:
                    return
                if message is RESET:
                    return  # messages may have been lost: the reconnection's "ready" refreshes the page
                if message.payload.get("subject") == wanted:
                    yield {"event": "changed", "data": message.type}

    return EventSourceResponse(changes(), ping=rt.settings.live_heartbeat_seconds,
                               headers={"Cache-Control": "no-store"})
