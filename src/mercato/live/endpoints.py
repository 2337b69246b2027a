"""``GET /events/stream``: a user's own events as Server-Sent Events (S3)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from sse_starlette.sse import EventSourceResponse

from mercato.access.dependencies import authenticated
from mercato.access.principal import Principal
from mercato.bus import repository
from mercato.bus.delivery import event_from_row
from mercato.kit.routing import TransactionalRoute, get_runtime

router = APIRouter(route_class=TransactionalRoute, tags=["live"])

REPLAY_BATCH = 500


@router.get("/events/stream", response_class=EventSourceResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "Server-Sent Events: `id` is the event's sequence, `event` its type, "
                                            "`data` the CloudEvent JSON. Comment lines are heartbeats."}})
async def stream(request: Request, me: Annotated[Principal, authenticated()],
                 last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=32)] = None
                 ) -> EventSourceResponse:
    """Your events as they happen (orders, payments, tasks, notifications, account).

    Reconnect with `Last-Event-ID` to receive what you missed first; the events come
    from the store's event log, so nothing is lost while you were away.
    """
    rt = get_runtime(request)
    resume_after = int(last_event_id) if last_event_id and last_event_id.isdigit() else None

    async def events() -> AsyncIterator[dict[str, Any]]:
        async with rt.live.subscribe(me.user_id) as queue:
            last = resume_after
            if last is not None:  # subscribed first, then replay: nothing falls in between
                while True:
                    async with rt.db.read_session() as session:
                        rows = await repository.events_for_user_after(session, me.user_id, last, limit=REPLAY_BATCH)
                    for row in rows:
                        event = event_from_row(row)
                        yield {"id": str(row.sequence), "event": row.type, "data": json.dumps(event.to_json())}
                        last = row.sequence
                    if len(rows) < REPLAY_BATCH:
                        break
            while True:
                message = await queue.get()
                if last is not None and message.sequence <= last:
                    continue
                last = message.sequence
                yield {"id": str(message.sequence), "event": message.type, "data": json.dumps(message.payload)}

    return EventSourceResponse(events(), ping=rt.settings.live_heartbeat_seconds)
