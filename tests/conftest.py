"""Test fixtures: a migrated database per test, the app in-process, and signed-in actors.

Backends come from the environment, so the same suite runs on the embedded default and
on the scaled one (``.ci/run`` does both):

- ``MERCATO_TEST_DATABASE_URL``: a PostgreSQL server URL (any database on it); each test
  gets its own database, cloned from a migrated template. Unset: SQLite files.
- ``MERCATO_TEST_REDIS_URL``: Redis for rate limits (keys under a unique namespace) and
  the Redis Streams broker; ``MERCATO_TEST_AMQP_URL`` RabbitMQ; ``MERCATO_TEST_NATS_URL`` NATS.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from mercato.app import create_app
from mercato.app.bootstrap import prepare_database
from mercato.app.runtime import Runtime
from mercato.config import Settings
from tests.support.actors import Actor, Actors
from tests.support.backends import AMQP_URL, NATS_URL, PG_URL, REDIS_URL, admin_url, asyncpg_dsn, pg_admin
from tests.support.databases import Clones

pytest_plugins = ["tests.support.money_invariants"]  # the money tests' invariant checks


BACKEND_MARKERS = ("postgres", "redis", "rabbitmq", "nats")
# Names by which a test module reaches a backend of the environment without the fixtures.
BACKEND_NAMES = ("MERCATO_TEST_", "PG_URL", "REDIS_URL", "AMQP_URL", "NATS_URL", "tests.support.backends")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked with a backend need it; they run in CI's scaled pass. With
    ``MERCATO_TEST_BACKENDS_ONLY=1`` (CI's second pass) only the tests that reach a backend
    run: the others do the same thing on every backend and ran in the first pass."""
    needs = {"postgres": (PG_URL, "MERCATO_TEST_DATABASE_URL"), "redis": (REDIS_URL, "MERCATO_TEST_REDIS_URL"),
             "rabbitmq": (AMQP_URL, "MERCATO_TEST_AMQP_URL"), "nats": (NATS_URL, "MERCATO_TEST_NATS_URL")}
    for item in items:
        for marker, (url, variable) in needs.items():
            if marker in item.keywords and not url:
                item.add_marker(pytest.mark.skip(reason=f"runs in the scaled pass ({variable})"))
    if os.environ.get("MERCATO_TEST_BACKENDS_ONLY") == "1":
        kept = [item for item in items if reaches_a_backend(item)]
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


_MODULE_REACHES: dict[Path, bool] = {}


def reaches_a_backend(item: pytest.Item) -> bool:
    """Whether a test can behave differently on another backend: it uses the database (the
    ``database_url`` fixture, which settings, runtime, app and client build on), carries a
    backend marker, or its module reads a backend's URL itself."""
    if "database_url" in getattr(item, "fixturenames", ()) or any(m in item.keywords for m in BACKEND_MARKERS):
        return True
    path = Path(item.path)
    if path not in _MODULE_REACHES:
        source = path.read_text(encoding="utf-8")
        _MODULE_REACHES[path] = any(name in source for name in BACKEND_NAMES)
    return _MODULE_REACHES[path]


# PostgreSQL: this worker's clones of the template, made and reset beside the tests (tests/support/databases.py).
_clones: list[Clones] = []


@pytest.fixture(scope="session")
def database_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated and seeded database to clone per test: a file (SQLite) or a database name (PostgreSQL)."""
    if PG_URL:
        name = f"mercato_tpl_{uuid.uuid4().hex[:12]}"
        asyncio.run(pg_admin(f'CREATE DATABASE "{name}"'))
        prepare_database(Settings(data_dir=tmp_path_factory.mktemp("tpl"), database_url=admin_url(name)))
        yield name
        if _clones:
            _clones.pop().close()  # its clones are gone before their template goes
        asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    else:
        directory = tmp_path_factory.mktemp("template")
        prepare_database(Settings(data_dir=directory))
        yield str(directory / "mercato.db")


@pytest.fixture
async def database_url(database_template: str, tmp_path: Path) -> AsyncIterator[str]:
    if PG_URL:
        if not _clones:
            _clones.append(Clones(database_template, pg_admin, asyncpg_dsn))
        name = await asyncio.to_thread(_clones[0].take)
        yield admin_url(name)
        _clones[0].give_back(name)
    else:
        target = tmp_path / "mercato.db"
        shutil.copyfile(database_template, target)
        yield f"sqlite+aiosqlite:///{target}"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, database_url=database_url, testing=True,
                    secret_key="test-secret-key-of-reasonable-length-0123456789",
                    redis_url=REDIS_URL, redis_namespace=f"mercato-test-{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = Runtime.from_settings(settings)
    yield rt
    if REDIS_URL:
        await rt.limiter.reset()
    await rt.close()


# What differs from test to test without shaping the app (its routes and middleware).
_PER_TEST_SETTINGS = frozenset({"data_dir", "database_url", "redis_namespace"})
_apps: dict[str, FastAPI] = {}


def app_for(runtime: Runtime) -> FastAPI:
    """An app for ``runtime``: built once per worker process for each shape of settings (FastAPI
    takes ~0.5 s to build ~160 routes), then started with each test's own runtime, bus and
    database. A test that needs an app of its own calls ``create_app`` itself."""
    shape = runtime.settings.model_dump_json(exclude=set(_PER_TEST_SETTINGS))
    application = _apps.get(shape)
    if application is None:
        application = _apps[shape] = create_app(runtime.settings)
    application.state.runtime = runtime
    application.state.stopping = asyncio.Event()
    return application


@pytest.fixture
async def app(runtime: Runtime, request: pytest.FixtureRequest) -> AsyncIterator[FastAPI]:
    """The app, started with the test's runtime. Mark a test ``own_app`` when it changes the
    app itself (adds or removes routes): it then gets one of its own."""
    if request.node.get_closest_marker("own_app"):
        application = create_app(runtime=runtime)
        async with application.router.lifespan_context(application):
            yield application
        return
    application = app_for(runtime)
    routes = len(application.router.routes)
    try:
        async with application.router.lifespan_context(application):
            yield application
    finally:
        del application.state.runtime
    assert len(application.router.routes) == routes, "a test changed the shared app's routes: mark it own_app"


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://mercato.test") as http:
        yield http


@pytest.fixture
def actors(client: httpx.AsyncClient, runtime: Runtime) -> Actors:
    return Actors(client, runtime)


@pytest.fixture
async def user(actors: Actors) -> Actor:
    return await actors.create()


@pytest.fixture
async def admin(actors: Actors) -> Actor:
    return await actors.create("marketplace_admin")


@pytest.fixture
async def super_admin(actors: Actors) -> Actor:
    return await actors.create("super_admin")
