"""``GET /events/stream``: a user's own events as Server-Sent Events (S3)."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from sse_starlette.sse import EventSourceResponse

from mercato.access.dependencies import still_identifies, user_or_instance
from mercato.access.principal import INSTANCE_KIND, Principal, instance_id_of
from mercato.bus import service as bus_service
from mercato.bus.delivery import event_from_row
from mercato.live.hub import RESET
from mercato.platform.routing import TransactionalRoute, get_runtime

router = APIRouter(route_class=TransactionalRoute, tags=["live"])

REPLAY_BATCH = 500
MAX_SEQUENCE = 2**63 - 1
# Sequences already sent on one connection, to drop repeats (a replayed event whose live
# message comes too, a repeated delivery). Live messages can come out of order (events
# of different subjects are delivered independently), so this is a set of recent ones:
# a high-water mark would drop an earlier event that arrives after a later one.
SENT_WINDOW = 4096
# The stream re-checks the caller's credentials this often, and at once after an event
# that may have ended them: a stream must not outlive its token (T4: logout, password
# change, disabling, role changes end old tokens at once; access tokens expire).
REVALIDATE_SECONDS = 30.0
CREDENTIAL_EVENTS = frozenset({"user.password_changed", "user.disabled", "user.roles_changed"})


class _Sent:
    def __init__(self) -> None:
        self._order: deque[int] = deque()
        self._members: set[int] = set()

    def __contains__(self, sequence: int) -> bool:
        return sequence in self._members

    def add(self, sequence: int) -> None:
        if sequence in self._members:
            return
        if len(self._order) >= SENT_WINDOW:
            self._members.discard(self._order.popleft())
        self._order.append(sequence)
        self._members.add(sequence)


def _resume_point(last_event_id: str | None) -> int | None:
    """The sequence a reconnecting client saw last; None if the header is absent or not one of our ids."""
    if last_event_id and last_event_id.isascii() and last_event_id.isdigit() and len(last_event_id) <= 19:
        value = int(last_event_id)
        if value <= MAX_SEQUENCE:
            return value
    return None


@router.get("/events/stream", response_class=EventSourceResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "Server-Sent Events: `id` is the event's sequence, `event` its type, "
                                            "`data` the CloudEvent JSON. Comment lines are heartbeats."}})
async def stream(request: Request, me: Annotated[Principal, user_or_instance()],
                 last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=32)] = None
                 ) -> EventSourceResponse:
    """Your events as they happen (orders, payments, tasks, notifications, account).

    Reconnect with `Last-Event-ID` to receive what you missed first; the events come
    from the store's event log, so nothing is lost while you were away. The stream may
    end when the server cannot keep up with a slow reader; reconnect the same way.
    With an instance token (`mercato agent`), only that instance's events (its tasks and
    installations) come.
    """
    rt = get_runtime(request)
    _, _, bearer = request.headers.get("authorization", "").partition(" ")
    bearer = bearer.strip()
    instance = str(instance_id_of(me)) if me.kind == INSTANCE_KIND else None

    def wanted(data: Any) -> bool:
        return instance is None or (isinstance(data, dict) and data.get("instance_id") == instance)

    async def still_signed_in() -> bool:
        return await still_identifies(rt, bearer, me)

    resume_after = _resume_point(last_event_id)
    if resume_after is None:
        # A new stream starts now: events committed from here on are sent, including any
        # before the subscription below is in place (they are replayed from the outbox).
        async with rt.db.read_session() as session:
            resume_after = await bus_service.latest_sequence(session)

    async def events() -> AsyncIterator[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        async with rt.live.subscribe(me.user_id) as queue:
            sent = _Sent()
            last = resume_after
            while True:  # subscribed first, then replay: nothing falls in between
                async with rt.db.read_session() as session:
                    rows = await bus_service.events_for_user_after(session, me.user_id, last, limit=REPLAY_BATCH)
                for row in rows:
                    event = event_from_row(row)
                    sent.add(row.sequence)
                    last = row.sequence
                    if not wanted(row.data):
                        continue
                    yield {"id": str(row.sequence), "event": row.type, "data": json.dumps(event.to_json())}
                if len(rows) < REPLAY_BATCH:
                    break
            check_at = loop.time() + REVALIDATE_SECONDS
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), timeout=max(0.0, check_at - loop.time()))
                except TimeoutError:
                    message = None
                if message is RESET:  # messages may have been lost: the client resumes from its last id
                    return
                # At or before the starting point: the client has it (Last-Event-ID), or it
                # is older than this stream (a late message of an event before it began).
                if message is not None and message.sequence > resume_after and message.sequence not in sent \
                        and wanted(message.payload.get("data")):
                    sent.add(message.sequence)
                    yield {"id": str(message.sequence), "event": message.type, "data": json.dumps(message.payload)}
                    if message.type in CREDENTIAL_EVENTS:
                        check_at = loop.time()
                if loop.time() >= check_at:
                    if not await still_signed_in():  # the client's reconnection gets its 401
                        return
                    check_at = loop.time() + REVALIDATE_SECONDS

    return EventSourceResponse(events(), ping=rt.settings.live_heartbeat_seconds)
