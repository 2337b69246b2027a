"""Webhook test fixtures: the API with the webhooks router, a local HTTP receiver on
127.0.0.1 (the only place these tests send anything), the driver that does what the bus
does, and a publisher with its owner (the classes behind them: ``support.py`` and
``tests/support/receivers.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from mercato.access.dependencies import api_routes
from mercato.app import create_app
from mercato.app.runtime import Runtime
from mercato.config import Settings
from mercato.webhooks import endpoints
from tests.support.actors import Actors
from tests.support.receivers import Receiver
from tests.webhooks.support import V1, Driver, World

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

@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


# --- driving the bus by hand ---------------------------------------------------------------------

@pytest.fixture
def driver(runtime: Runtime) -> Driver:
    return Driver(runtime)


@pytest.fixture
async def world(client: httpx.AsyncClient, actors: Actors) -> World:
    owner = await actors.create()
    publisher = await actors.publisher(owner)
    owner = await actors.login(owner.email, owner.password, user_id=owner.id)  # roles changed: fresh token
    return World(client, actors, owner, publisher["slug"])
