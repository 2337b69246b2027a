"""S3: a signed-in user's own events as Server-Sent Events, over a real HTTP connection.

Each test serves the app with uvicorn on a free local port and talks to it with httpx,
so streaming, heartbeats and disconnects are the real thing (httpx's in-process ASGI
transport only returns once a response has ended, which a stream never does). The hub
is the runtime's: in memory, or Redis pub/sub when ``MERCATO_TEST_REDIS_URL`` is set.
Every read has a timeout: a missing frame fails the test, it never hangs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from mercato.accounts import service
from mercato.app.runtime import Runtime
from mercato.bus import repository
from mercato.bus.events import EVENT_TYPES
from mercato.config import Settings
from mercato.live import endpoints as live_endpoints
from mercato.live import hub as live_hub
from mercato.live.hub import LiveHub, LiveMessage, MemoryHub, RedisHub, make_hub
from mercato.models import OutboxEvent
from tests.support.actors import DEFAULT_PASSWORD, Actor
from tests.support.bus import handled
from tests.support.live_server import serve
from tests.support.pages import TOKEN

V1 = "/api/v1"
STREAM = f"{V1}/events/stream"
HEARTBEAT = 0.3
WAIT = 10.0  # the longest any single frame may take to arrive


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"live_heartbeat_seconds": HEARTBEAT, "bus_sweep_interval_seconds": 0.2})


# --- a real server ---------------------------------------------------------------------------------

@dataclass
class Server:
    url: str
    runtime: Runtime
    http: httpx.AsyncClient

    async def sign_up(self, *roles: str) -> Actor:
        """A fresh account, signed in over HTTP."""
        email = f"live-{uuid.uuid4().hex[:8]}@example.org"
        async with self.runtime.db.transaction() as session:
            user = await service.create_user(session, self.runtime, email=email, password=DEFAULT_PASSWORD,
                                             roles=["user", *roles])
        response = await self.http.post(f"{V1}/auth/login", json={"email": email, "password": DEFAULT_PASSWORD})
        assert response.status_code == 200, response.text
        body = response.json()
        return Actor(id=str(user.id), email=email, password=DEFAULT_PASSWORD, access_token=body["access_token"],
                     refresh_token=body["refresh_token"])

    async def rename(self, actor: Actor, name: str) -> OutboxEvent:
        """PATCH /me: a ``user.updated`` event about ``actor``; returns its outbox row."""
        response = await self.http.patch(f"{V1}/me", headers=actor.headers, json={"display_name": name})
        assert response.status_code == 200, response.text
        return await self.latest(actor, "user.updated")

    async def latest(self, actor: Actor, event_type: str) -> OutboxEvent:
        """The newest ``event_type`` event about ``actor``."""
        async with self.runtime.db.read_session() as session:
            rows = await repository.search_events(session, event_type=event_type, subject=actor.id, since=None,
                                                  until=None, before_sequence=None, limit=1)
        assert rows, f"no {event_type} about {actor.email}"
        return rows[0]

    async def pushed(self, event: OutboxEvent) -> None:
        """Wait until ``live.push`` has handled ``event`` (it has been handed to the hub)."""
        await handled(self.runtime, "live.push", event.id, timeout=WAIT)


@pytest.fixture
async def server(runtime: Runtime) -> AsyncIterator[Server]:
    async with serve(runtime) as url, httpx.AsyncClient(base_url=url, timeout=WAIT) as http:
        yield Server(url, runtime, http)


# --- reading a stream ----------------------------------------------------------------------------

@dataclass
class Frame:
    id: str | None = None
    event: str | None = None
    data: str | None = None
    retry: str | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def is_heartbeat(self) -> bool:
        return self.id is None and self.event is None and self.data is None and bool(self.comments)

    def cloudevent(self) -> dict[str, Any]:
        assert self.data is not None
        return json.loads(self.data)  # type: ignore[no-any-return]


END = Frame(comments=["<end of stream>"])


class Stream:
    """Parses the SSE body in the background; frames are read with a timeout."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.frames: asyncio.Queue[Frame] = asyncio.Queue()
        self.ended = False
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        frame = Frame()
        try:
            async for line in self.response.aiter_lines():
                if line == "":
                    if frame != Frame():
                        await self.frames.put(frame)
                    frame = Frame()
                elif line.startswith(":"):
                    frame.comments.append(line[1:].strip())
                else:
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "data":
                        frame.data = value if frame.data is None else f"{frame.data}\n{value}"
                    elif name in ("id", "event", "retry"):
                        setattr(frame, name, value)
        except httpx.HTTPError:
            pass
        finally:
            await self.frames.put(END)

    async def next(self, timeout: float = WAIT) -> Frame:
        try:
            frame = await asyncio.wait_for(self.frames.get(), timeout)
        except TimeoutError:
            raise AssertionError(f"no frame within {timeout}s") from None
        if frame is END:
            self.ended = True
        return frame

    async def next_event(self, timeout: float = WAIT) -> Frame:
        """The next frame that is an event (heartbeats skipped)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            frame = await self.next(max(0.0, deadline - asyncio.get_running_loop().time()))
            assert frame is not END, "the stream ended"
            if not frame.is_heartbeat:
                return frame

    async def ends(self, timeout: float = WAIT) -> None:
        """The stream ends within ``timeout``, with nothing but heartbeats before."""
        deadline = asyncio.get_running_loop().time() + timeout
        while (frame := await self.next(max(0.0, deadline - asyncio.get_running_loop().time()))) is not END:
            assert frame.is_heartbeat, f"an event instead of the end: {frame}"

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


@contextlib.asynccontextmanager
async def open_stream(http: httpx.AsyncClient, actor: Actor, *, last_event_id: str | None = None,
                      ) -> AsyncIterator[Stream]:
    headers: dict[str, str | bytes] = {**actor.headers, "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id.encode()  # bytes: any value a client might send
    async with http.stream("GET", STREAM, headers=headers) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        stream = Stream(response)
        try:
            yield stream
        finally:
            await stream.close()


def assert_frame_is(frame: Frame, row: OutboxEvent) -> None:
    """The frame carries ``row``: id = sequence, event = type, data = the CloudEvent."""
    assert frame.id == str(row.sequence)
    assert frame.event == row.type
    body = frame.cloudevent()
    assert body["specversion"] == "1.0" and body["datacontenttype"] == "application/json"
    assert body["id"] == str(row.id) and body["type"] == row.type and body["subject"] == row.subject
    assert body["source"] == f"mercato/{EVENT_TYPES[row.type].source}"
    assert body["sequence"] == str(row.sequence)
    assert body["data"] == row.data


async def subscriptions(hub: LiveHub, user_id: str) -> int:
    """How many live subscriptions ``user_id`` has on ``hub`` (to check none leak)."""
    if isinstance(hub, MemoryHub):
        return len(hub._queues.get(uuid.UUID(user_id), ()))
    assert isinstance(hub, RedisHub)
    [(_, count)] = await hub.redis.pubsub_numsub(hub._channel(uuid.UUID(user_id)))
    return int(count)


async def until_subscriptions(hub: LiveHub, user_id: str, expected: int) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT
    while (count := await subscriptions(hub, user_id)) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"{count} subscriptions, not {expected}"
        await asyncio.sleep(0.02)


# --- who may listen ------------------------------------------------------------------------------

async def test_anonymous_callers_get_401(server: Server) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        response = await server.http.get(STREAM, headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_an_api_token_may_open_the_stream(server: Server) -> None:
    me = await server.sign_up()
    created = await server.http.post(f"{V1}/me/tokens", headers=me.headers, json={"name": "live"})
    assert created.status_code == 201, created.text
    token = Actor(id=me.id, email=me.email, password=me.password, access_token=created.json()["token"],
                  refresh_token="")
    async with open_stream(server.http, token) as stream:
        row = await server.rename(me, "Via a token")
        assert_frame_is(await stream.next_event(), row)


# --- live events ---------------------------------------------------------------------------------

async def test_an_event_about_me_arrives_as_a_frame(server: Server) -> None:
    me = await server.sign_up()
    async with open_stream(server.http, me) as stream:
        row = await server.rename(me, "Live Me")
        frame = await stream.next_event()
        assert_frame_is(frame, row)
        assert frame.cloudevent()["data"] == {"user_id": me.id, "changed": ["display_name"]}
        second = await server.rename(me, "Live Me Again")
        assert_frame_is(await stream.next_event(), second)
        assert int(second.sequence) > int(row.sequence)


async def test_an_event_right_after_connecting_is_not_lost(server: Server) -> None:
    """The subscription is in place before the stream's first event, whatever the timing."""
    me = await server.sign_up()
    for n in range(5):
        async with open_stream(server.http, me) as stream:
            row = await server.rename(me, f"Quick {n}")
            assert_frame_is(await stream.next_event(), row)


async def test_other_users_events_never_arrive(server: Server) -> None:
    me, other = await server.sign_up(), await server.sign_up()
    async with open_stream(server.http, me) as mine, open_stream(server.http, other) as theirs:
        for n in range(3):
            their_row = await server.rename(other, f"Other {n}")
            await server.pushed(their_row)  # it has gone to the hub: it would be on my stream by now
            assert_frame_is(await theirs.next_event(), their_row)
        my_row = await server.rename(me, "Me")
        assert_frame_is(await mine.next_event(), my_row)  # the first and only event on my stream
        await server.pushed(my_row)
        their_last = await server.rename(other, "Other again")
        assert_frame_is(await theirs.next_event(), their_last)  # not mine in between either


async def test_events_of_other_types_about_me_arrive_too(server: Server) -> None:
    """Anything whose data names me, not only changes to my account made by me: here an
    admin grants me a role (``user.roles_changed``)."""
    me = await server.sign_up()
    admin = await server.sign_up("marketplace_admin")
    async with open_stream(server.http, me) as stream:
        response = await server.http.patch(f"{V1}/admin/users/{me.id}", headers=admin.headers,
                                           json={"roles": ["user", "reviewer"]})
        assert response.status_code == 200, response.text
        row = await server.latest(me, "user.roles_changed")
        frame = await stream.next_event()
        assert_frame_is(frame, row)
        assert frame.cloudevent()["data"] == {"user_id": me.id, "roles": ["reviewer", "user"]}


async def test_heartbeats_arrive_while_nothing_happens(server: Server) -> None:
    me = await server.sign_up()
    async with open_stream(server.http, me) as stream:
        started = asyncio.get_running_loop().time()
        beats = [await stream.next(timeout=HEARTBEAT * 10) for _ in range(3)]
        elapsed = asyncio.get_running_loop().time() - started
    assert all(frame.is_heartbeat for frame in beats), beats
    assert all(frame.comments[0].startswith("ping") for frame in beats)
    assert elapsed >= HEARTBEAT * 2


# --- resuming ------------------------------------------------------------------------------------

async def test_a_reconnection_with_last_event_id_gets_exactly_what_was_missed_then_live_events(
        server: Server) -> None:
    me, other = await server.sign_up(), await server.sign_up()
    async with open_stream(server.http, me) as stream:
        first = await server.rename(me, "Before")
        seen = await stream.next_event()
        assert_frame_is(seen, first)
    await until_subscriptions(server.runtime.live, me.id, 0)  # disconnected: nobody listens for me
    missed = [await server.rename(me, "Away 1"), await server.rename(other, "Not mine"),
              await server.rename(me, "Away 2")]
    for row in missed:
        await server.pushed(row)  # their live messages went nowhere
    async with open_stream(server.http, me, last_event_id=seen.id) as stream:
        assert_frame_is(await stream.next_event(), missed[0])
        assert_frame_is(await stream.next_event(), missed[2])
        live = await server.rename(me, "Back")
        assert_frame_is(await stream.next_event(), live)  # no repeat of a missed one in between
        await server.pushed(live)
        sentinel = await server.rename(me, "Sentinel")
        assert_frame_is(await stream.next_event(), sentinel)  # and no repeat of the live one


async def test_resuming_from_zero_replays_my_whole_history_in_order(server: Server) -> None:
    me = await server.sign_up()
    renamed = [await server.rename(me, f"Name {n}") for n in range(3)]
    async with server.runtime.db.read_session() as session:
        history = await repository.events_for_user_after(session, uuid.UUID(me.id), 0, limit=100)
    assert "user.registered" in [row.type for row in history[:-3]]  # and the roles it was created with
    assert [row.id for row in history[-3:]] == [row.id for row in renamed]
    async with open_stream(server.http, me, last_event_id="0") as stream:
        for row in history:
            assert_frame_is(await stream.next_event(), row)
        live = await server.rename(me, "Now")
        assert_frame_is(await stream.next_event(), live)


@pytest.mark.parametrize("last_event_id", ["not-a-number", "²", "-1", "99999999999999999999", ""])
async def test_a_last_event_id_that_is_not_ours_starts_a_fresh_stream(server: Server, last_event_id: str) -> None:
    me = await server.sign_up()
    await server.rename(me, "Earlier")
    async with open_stream(server.http, me, last_event_id=last_event_id) as stream:
        row = await server.rename(me, "Fresh")
        assert_frame_is(await stream.next_event(), row)  # nothing replayed before it


async def test_a_too_long_last_event_id_is_refused(server: Server) -> None:
    me = await server.sign_up()
    response = await server.http.get(STREAM, headers={**me.headers, "Last-Event-ID": "1" * 33})
    assert response.status_code == 422, response.text


# --- the hub -------------------------------------------------------------------------------------

async def test_closing_the_stream_ends_its_subscription(server: Server) -> None:
    me = await server.sign_up()
    async with open_stream(server.http, me), open_stream(server.http, me) as second:
        await until_subscriptions(server.runtime.live, me.id, 2)
        row = await server.rename(me, "Both")
        assert_frame_is(await second.next_event(), row)
    await until_subscriptions(server.runtime.live, me.id, 0)


class Tap:
    """The runtime's hub, with every subscription's queue in reach of the test."""

    def __init__(self, inner: LiveHub) -> None:
        self.inner = inner
        self.queues: list[asyncio.Queue[LiveMessage]] = []

    async def publish(self, user_id: uuid.UUID, message: LiveMessage) -> None:
        await self.inner.publish(user_id, message)

    @contextlib.asynccontextmanager
    async def subscribe(self, user_id: uuid.UUID) -> AsyncIterator[asyncio.Queue[LiveMessage]]:
        async with self.inner.subscribe(user_id) as queue:
            self.queues.append(queue)
            yield queue

    async def close(self) -> None:
        await self.inner.close()


async def test_a_full_queue_is_reset_instead_of_dropping_messages_silently(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live_hub, "QUEUE_SIZE", 3)
    hub = runtime.live
    user_id = uuid.uuid4()
    async with hub.subscribe(user_id) as queue:
        for n in range(10):  # nobody reads: the queue overflows
            await hub.publish(user_id, LiveMessage(sequence=10_000 + n, type="user.updated", payload={}))
        async with asyncio.timeout(WAIT):  # Redis delivers to the subscription in the background
            # polls the queue the subscription fills (no event to wait on)
            while queue.empty() or queue._queue[0] is not live_hub.RESET:  # type: ignore[attr-defined]  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert queue.get_nowait() is live_hub.RESET
        assert queue.qsize() < 3


async def test_a_reset_ends_the_stream_and_the_reconnection_misses_nothing(
        server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    tap = Tap(server.runtime.live)
    monkeypatch.setattr(server.runtime, "live", tap)  # what the endpoint subscribes with
    me = await server.sign_up()
    async with open_stream(server.http, me) as stream:
        seen = await server.rename(me, "Seen")
        assert_frame_is(await stream.next_event(), seen)
        [queue] = tap.queues
        live_hub.reset(queue)  # as an overflow or a lost Redis connection does
        await stream.ends()
        missed = await server.rename(me, "Missed while away")
    async with open_stream(server.http, me, last_event_id=str(seen.sequence)) as stream:
        assert_frame_is(await stream.next_event(), missed)


async def test_live_messages_out_of_order_are_all_sent_once(server: Server) -> None:
    """Deliveries of different subjects finish in any order: a later sequence first must not hide an earlier one."""
    me = await server.sign_up()
    hub = server.runtime.live
    async with open_stream(server.http, me) as stream:
        await until_subscriptions(hub, me.id, 1)
        for sequence in (900_002, 900_001, 900_002, 900_003, 900_001):
            await hub.publish(uuid.UUID(me.id), LiveMessage(sequence=sequence, type="user.updated",
                                                            payload={"n": sequence}))
        ids = [(await stream.next_event()).id for _ in range(3)]
        assert ids == ["900002", "900001", "900003"]
        row = await server.rename(me, "After")
        assert_frame_is(await stream.next_event(), row)  # no repeats before it


async def test_closing_the_hub_resets_its_subscriptions(settings: Settings) -> None:
    hub = make_hub(settings.redis_url, namespace=f"{settings.redis_namespace}-closing")
    user_id = uuid.uuid4()
    try:
        async with hub.subscribe(user_id) as queue:
            await hub.publish(user_id, LiveMessage(sequence=1, type="user.updated", payload={}))
            first = await asyncio.wait_for(queue.get(), WAIT)
            assert first.sequence == 1
            await hub.close()
            assert await asyncio.wait_for(queue.get(), WAIT) is live_hub.RESET
    finally:
        await hub.close()


# --- credentials that end --------------------------------------------------------------------------

async def test_a_password_change_ends_the_stream_of_the_old_token(server: Server) -> None:
    me = await server.sign_up()
    async with open_stream(server.http, me) as stream:
        response = await server.http.post(f"{V1}/me/password", headers=me.headers, json={
            "current_password": DEFAULT_PASSWORD, "new_password": "a brand new long passphrase"})
        assert response.status_code == 204, response.text
        assert_frame_is(await stream.next_event(), await server.latest(me, "user.password_changed"))
        await stream.ends()  # the token it was opened with is dead
    assert (await server.http.get(STREAM, headers=me.headers)).status_code == 401


async def test_disabling_the_account_ends_its_stream(server: Server) -> None:
    me = await server.sign_up()
    admin = await server.sign_up("marketplace_admin")
    async with open_stream(server.http, me) as stream:
        response = await server.http.patch(f"{V1}/admin/users/{me.id}", headers=admin.headers,
                                           json={"is_active": False})
        assert response.status_code == 200, response.text
        assert (await stream.next_event()).event == "user.disabled"
        await stream.ends()


async def test_a_logout_ends_the_stream_at_the_next_check(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """A logout publishes nothing: the periodic check of the credentials ends the stream."""
    monkeypatch.setattr(live_endpoints, "REVALIDATE_SECONDS", 0.2)
    me = await server.sign_up()
    async with open_stream(server.http, me) as stream:
        await asyncio.sleep(0.5)  # checked and still valid: the stream goes on
        row = await server.rename(me, "Still here")
        assert_frame_is(await stream.next_event(), row)
        response = await server.http.post(f"{V1}/auth/logout", headers=me.headers,
                                          json={"refresh_token": me.refresh_token})
        assert response.status_code == 204, response.text
        await stream.ends()


@pytest.mark.redis
async def test_a_publish_from_another_process_reaches_the_stream_through_redis(server: Server) -> None:
    """Scaled: a worker's ``live.push`` publishes on its own Redis connection; the API process
    holding the connection delivers it. Another RedisHub stands in for the worker."""
    assert isinstance(server.runtime.live, RedisHub)
    settings = server.runtime.settings
    assert settings.redis_url
    worker = RedisHub(settings.redis_url, namespace=settings.redis_namespace)
    me, other = await server.sign_up(), await server.sign_up()
    try:
        async with open_stream(server.http, me) as stream:
            await until_subscriptions(server.runtime.live, me.id, 1)
            await worker.publish(uuid.UUID(other.id), LiveMessage(sequence=700_001, type="user.updated",
                                                                  payload={"for": "other"}))
            await worker.publish(uuid.UUID(me.id), LiveMessage(sequence=700_002, type="user.updated",
                                                               payload={"for": "me"}))
            frame = await stream.next_event()
            assert (frame.id, frame.event, frame.cloudevent()) == ("700002", "user.updated", {"for": "me"})
            row = await server.rename(me, "Through Redis")
            assert_frame_is(await stream.next_event(), row)
        await until_subscriptions(server.runtime.live, me.id, 0)
    finally:
        await worker.close()


async def test_an_instance_token_streams_only_its_own_instance(server: Server) -> None:
    """``mercato agent`` may open the stream with its instance token (API.md "Sync and live"):
    it gets its own instance's events and nothing else of its owner's — not the account's,
    not another instance's. A deleted instance's token is refused."""
    me = await server.sign_up()
    tokens, ids = {}, {}
    for name in ("a", "b"):
        created = await server.http.post(f"{V1}/instances", headers=me.headers, json={"name": f"box {name}"})
        assert created.status_code == 201, created.text
        tokens[name], ids[name] = created.json()["token"], created.json()["id"]
    agent = Actor(id=me.id, email=me.email, password="", access_token=tokens["a"], refresh_token="")

    async def latest_about(instance_id: str, event_type: str) -> OutboxEvent:
        async with server.runtime.db.read_session() as session:
            rows = await repository.search_events(session, event_type=event_type, subject=instance_id, since=None,
                                                  until=None, before_sequence=None, limit=1)
        assert rows, f"no {event_type} about {instance_id}"
        return rows[0]

    async with open_stream(server.http, agent, last_event_id="0") as stream:
        assert_frame_is(await stream.next_event(), await latest_about(ids["a"], "instance.registered"))
        await server.pushed(await server.rename(me, "Not for the agent"))
        deleted_b = await server.http.delete(f"{V1}/instances/{ids['b']}", headers=me.headers)
        assert deleted_b.status_code == 204, deleted_b.text
        await server.pushed(await latest_about(ids["b"], "instance.deleted"))
        deleted_a = await server.http.delete(f"{V1}/instances/{ids['a']}", headers=me.headers)
        assert deleted_a.status_code == 204, deleted_a.text
        assert_frame_is(await stream.next_event(), await latest_about(ids["a"], "instance.deleted"))
    refused = await server.http.get(STREAM, headers=agent.headers)
    assert refused.status_code == 401, refused.text


# --- the pages' live wire (/live/{subject}, web/live.py) ---------------------------------------------

async def test_a_page_s_live_wire_sends_changed_for_the_signed_in_person_s_events_about_its_subject(
        server: Server) -> None:
    """The order page and the task bar refresh at each event about their subject: the wire,
    over the page's cookie session, says ``ready`` once subscribed, then ``changed`` with the
    event's type for each event of the person about that subject, and nothing for another."""
    actor = await server.sign_up()
    login = await server.http.get("/login")
    token = TOKEN.search(login.text).group(1)  # type: ignore[union-attr]
    signed = await server.http.post("/login", data={"email": actor.email, "password": actor.password,
                                                    "next": "/", "csrf_token": token})
    assert signed.status_code == 303, signed.text
    async with server.http.stream("GET", f"/live/{actor.id}") as mine, \
            server.http.stream("GET", f"/live/{uuid.uuid4()}") as other:
        assert mine.status_code == other.status_code == 200
        assert mine.headers["content-type"].startswith("text/event-stream")
        wire, elsewhere = Stream(mine), Stream(other)
        try:
            assert (await wire.next_event()).event == "ready"
            assert (await elsewhere.next_event()).event == "ready"
            event = await server.rename(actor, "Live Wire")
            await server.pushed(event)
            changed = await wire.next_event()
            assert (changed.event, changed.data) == ("changed", "user.updated")
            # the other subject's wire: the next frame after the push is a heartbeat, not the event
            assert (await elsewhere.next()).is_heartbeat
        finally:
            await wire.close()
            await elsewhere.close()
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as stranger:
        signed_out = await stranger.get(f"/live/{actor.id}")
    assert signed_out.status_code == 303 and signed_out.headers["location"].startswith("/login")
