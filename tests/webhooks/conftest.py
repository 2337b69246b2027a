"""Webhook test fixtures: the API with the webhooks router, a local HTTP receiver on
127.0.0.1 (the only place these tests send anything), signature checks written
independently of ``mercato.kit.signing``, and a driver that does what the bus does."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from mercato.access.dependencies import api_routes
from mercato.app import create_app
from mercato.app.runtime import Runtime
from mercato.bus.delivery import event_from_row
from mercato.config import Settings
from mercato.kit.clock import utcnow
from mercato.models import OutboxEvent, WebhookDelivery
from mercato.webhooks import endpoints, handlers, sending
from tests.support.actors import Actor, Actors

V1 = "/api/v1"


# --- the app and settings --------------------------------------------------------------------------

@pytest.fixture
def allowed_hosts() -> list[str]:
    """The SSRF allowlist of the store under test: the local receiver. test_ssrf.py empties it."""
    return ["127.0.0.1"]


@pytest.fixture
def settings(settings: Settings, allowed_hosts: list[str]) -> Settings:
    return settings.model_copy(update={"outbound_allowed_hosts": allowed_hosts, "webhook_timeout_seconds": 3.0})


@pytest.fixture
def background_bus() -> bool:
    """Whether the app runs its lifespan, and with it the embedded bus of ``mercato serve``
    (relay, the ``webhooks.fan_out`` subscriber, the ``webhooks.send`` sweep every second).
    Off by default: those tests drive fan-out and sending themselves (:class:`Driver`), so
    they control time and no background sender races them. A test turns it on with
    ``@pytest.mark.parametrize("background_bus", [True])``."""
    return False


@pytest.fixture
async def app(runtime: Runtime, background_bus: bool):  # type: ignore[no-untyped-def]
    application = create_app(runtime=runtime)  # the runtime is set on the app: it serves without its lifespan
    if not any(path == f"{V1}/webhooks" for path, _ in api_routes(application)):  # until app.py mounts it
        application.include_router(endpoints.router, prefix=V1)
    if not background_bus:
        yield application
        return
    async with application.router.lifespan_context(application):
        yield application


# --- a receiver ------------------------------------------------------------------------------------

@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A minimal HTTP/1.1 server: records each request, answers from ``script`` (then ``default``)."""

    requests: list[Received] = field(default_factory=list)
    script: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    default: tuple[int, dict[str, str]] = (200, {})
    port: int = 0
    server: asyncio.Server | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, *statuses: int | tuple[int, dict[str, str]]) -> None:
        for status in statuses:
            self.script.append(status if isinstance(status, tuple) else (status, {}))

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, path, _ = (await reader.readline()).decode("latin-1").split(" ", 2)
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Received(method, path, headers, body))
            status, extra = self.script.popleft() if self.script else self.default
            content = f"status {status}".encode()
            head = [f"HTTP/1.1 {status} Whatever", f"Content-Length: {len(content)}", "Connection: close",
                    *(f"{k}: {v}" for k, v in extra.items())]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + content)
            await writer.drain()
        finally:
            writer.close()

    async def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.requests) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"the receiver got {len(self.requests)} requests, expected {count}")
            await asyncio.sleep(0.05)
        return self.requests


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


# --- Standard Webhooks, written independently ----------------------------------------------------

def signatures_valid_for(secret: str, received: Received) -> bool:
    """Does ``webhook-signature`` hold a v1 signature of this request by ``secret``?"""
    key = base64.b64decode(secret[len("whsec_"):])
    signed = f"{received.headers['webhook-id']}.{received.headers['webhook-timestamp']}.".encode() + received.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [part.split(",", 1) for part in received.headers["webhook-signature"].split(" ")]
    return any(version == "v1" and hmac.compare_digest(signature, expected) for version, signature in offered)


# --- driving the bus by hand ---------------------------------------------------------------------

class Driver:
    """Does what the bus does for the webhooks subscriber (fan-out of each new event, once)
    and runs the sender, so tests control time."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.after = 0
        self.now = utcnow()

    async def fan_out(self) -> int:
        async with self.runtime.db.transaction() as session:
            rows = list(await session.scalars(select(OutboxEvent).where(OutboxEvent.sequence > self.after)
                                              .order_by(OutboxEvent.sequence)))
            await handlers.fan_out(session, [event_from_row(row) for row in rows])
            if rows:
                self.after = rows[-1].sequence
        return len(rows)

    async def send(self, *, later: timedelta = timedelta(0), settings: Settings | None = None) -> int:
        """Run the sender ``later`` after the previous run (past any backoff when large)."""
        self.now = max(self.now + later, utcnow())
        return await sending.send_due(self.runtime.db, settings or self.runtime.settings, now=self.now)

    async def deliveries(self) -> list[WebhookDelivery]:
        async with self.runtime.db.read_session() as session:
            return list(await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at)))

    async def delivery_count(self) -> int:
        async with self.runtime.db.read_session() as session:
            return int(await session.scalar(select(func.count()).select_from(WebhookDelivery)) or 0)


@pytest.fixture
def driver(runtime: Runtime) -> Driver:
    return Driver(runtime)


# --- API helpers ---------------------------------------------------------------------------------

@dataclass
class World:
    client: httpx.AsyncClient
    actors: Actors
    owner: Actor
    slug: str

    async def create(self, url: str, *, event_types: list[str] | None = None, actor: Actor | None = None,
                     publisher: str | None = "<mine>") -> httpx.Response:
        body: dict[str, object] = {"url": url, "event_types": event_types or ["publisher.updated"]}
        if publisher is not None:
            body["publisher"] = self.slug if publisher == "<mine>" else publisher
        return await self.client.post(f"{V1}/webhooks", headers=(actor or self.owner).headers, json=body)

    async def touch(self, slug: str | None = None, actor: Actor | None = None, name: str | None = None) -> None:
        """Cause a publisher.updated event of ``slug`` (default: the owner's publisher)."""
        slug = slug or self.slug
        response = await self.client.patch(f"{V1}/publishers/{slug}", headers=(actor or self.owner).headers,
                                           json={"name": name or f"Renamed {datetime.now().timestamp()}"})
        assert response.status_code == 200, response.text


@pytest.fixture
async def world(client: httpx.AsyncClient, actors: Actors) -> World:
    owner = await actors.create()
    publisher = await actors.publisher(owner)
    owner = await actors.login(owner.email, owner.password, user_id=owner.id)  # roles changed: fresh token
    return World(client, actors, owner, publisher["slug"])
