"""The ``mercato`` command. Every command finds the store through ``--data-dir`` or
``MERCATO_DATA_DIR`` (default ``./mercato-data``) and ``MERCATO_DATABASE_URL``."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mercato.cli.output import fail
from mercato.config import Settings, bound_url, load_settings, with_bound_address
from mercato.kit import startup_gc

if TYPE_CHECKING:
    from mercato.app.runtime import Runtime

app = typer.Typer(help="Mercato: a self-hostable marketplace server for software.", no_args_is_help=True,
                  pretty_exceptions_enable=False)

DataDir = Annotated[Path | None, typer.Option("--data-dir", envvar="MERCATO_DATA_DIR",
                                              help="Where the embedded store keeps its files.")]


def _settings(data_dir: Path | None) -> Settings:
    return load_settings(data_dir=data_dir) if data_dir else load_settings()


@app.command()
def migrate(data_dir: DataDir = None) -> None:
    """Apply database migrations and seed the system roles."""
    # lazy: a command loads only what it runs (start-up time of mercato)
    from mercato.app.bootstrap import prepare_database
    from mercato.kit import migrate as migrations

    settings = _settings(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    before = asyncio.run(migrations.current_revisions(settings.resolved_database_url))
    migrated = prepare_database(settings)
    heads = ", ".join(sorted(migrations.head_revisions()))
    if migrated:
        start = ", ".join(sorted(before)) if before else "an empty database"
        typer.echo(f"migrated the database from {start} to {heads} ({_describe(settings)})")
    else:
        typer.echo(f"the database is already current at {heads}; nothing to migrate ({_describe(settings)})")


@app.command()
def serve(host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
          data_dir: DataDir = None,
          demo: Annotated[bool, typer.Option("--demo", help="Load the demo accounts and catalog.")] = False,
          migrate_first: Annotated[bool, typer.Option("--migrate/--no-migrate",
                                                      help="Apply migrations at start (default on SQLite).")] = None,  # type: ignore[assignment]
          ) -> None:
    """Run the API (and, on the embedded default, the workers) in this process."""
    with startup_gc.paused():  # until the server runs (kit/startup_gc.py)
        _serve(host, port, data_dir, demo=demo, migrate_first=migrate_first)


def _serve(host: str, port: int, data_dir: Path | None, *, demo: bool, migrate_first: bool | None) -> None:
    # lazy: a command loads only what it runs (start-up time of mercato)
    from mercato.app import create_app
    from mercato.app.bootstrap import prepare_database

    configured = _settings(data_dir)
    settings = with_bound_address(configured, host, port)
    if migrate_first if migrate_first is not None else settings.is_sqlite:
        prepare_database(settings)
    typer.echo(f"Mercato on {bound_url(host, port)}  ({_describe(settings)})")
    if host in ("0.0.0.0", "::") and settings is not configured:
        typer.echo(f"payment links and e-mails use {settings.public_url}: set MERCATO_PUBLIC_URL to the "
                   "address buyers reach", err=True)
    # The demo is loaded beside the running server, on its runtime: the store answers at once,
    # the catalog fills in within seconds, and a buyer's order does not wait behind the demo's writes.
    application = create_app(settings, background=[_load_demo_beside] if demo else [])
    _run_server(application, host, port)


# Open requests (an agent's long poll) get this long to finish once the server is told to stop.
GRACEFUL_STOP_SECONDS = 3.0


def _run_server(application: object, host: str, port: int) -> None:
    # lazy: a command loads only what it runs (start-up time of mercato)
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: object) -> None:
            # Tell long polls first: they answer at once instead of holding the stop up.
            stopping = getattr(getattr(application, "state", None), "stopping", None)
            loop = getattr(self, "_mercato_loop", None)
            if stopping is not None and loop is not None:
                loop.call_soon_threadsafe(stopping.set)
            super().handle_exit(sig, frame)  # type: ignore[arg-type]

        async def serve(self, sockets: object = None) -> None:
            self._mercato_loop = asyncio.get_running_loop()
            await super().serve(sockets)  # type: ignore[arg-type]

        async def startup(self, sockets: object = None) -> None:
            await super().startup(sockets)  # type: ignore[arg-type]
            startup_gc.settle()  # the app is up: its start-up's garbage collected, the rest frozen

    # proxy_headers off: the app reads X-Forwarded-For itself, from MERCATO_TRUSTED_PROXIES only.
    config = uvicorn.Config(application, host=host, port=port, log_level="warning", access_log=False,  # type: ignore[arg-type]
                            proxy_headers=False, timeout_graceful_shutdown=GRACEFUL_STOP_SECONDS)
    Server(config).run()


async def _load_demo_beside(rt: Runtime) -> None:
    # lazy: a command loads only what it runs (start-up time of mercato)
    from mercato.demo import load_demo

    try:
        created = await load_demo(rt)
    except Exception as error:  # the server goes on without (all of) the demo
        typer.secho(f"warning: the demo could not be loaded completely: {error}", fg=typer.colors.YELLOW, err=True)
        return
    typer.echo(f"demo loaded ({len(created)} things created)", err=True)


@app.command()
def demo(data_dir: DataDir = None) -> None:
    """Load the demo accounts and catalog (idempotent)."""
    # lazy: a command loads only what it runs (start-up time of mercato)
    from mercato.app.bootstrap import prepare_database

    settings = _settings(data_dir)
    if settings.is_sqlite:
        prepare_database(settings)
    for line in _load_demo(settings):
        typer.echo(f"created {line}")


def _load_demo(settings: Settings) -> list[str]:
    # lazy: a command loads only what it runs (start-up time of mercato)
    from mercato.app.runtime import Runtime
    from mercato.demo import load_demo

    async def run() -> list[str]:
        rt = Runtime.from_settings(settings)
        try:
            return await load_demo(rt)
        finally:
            await rt.close()

    return asyncio.run(run())


@app.command()
def createsuperuser(
    email: Annotated[str, typer.Option(help="The super admin's email.")],
    password: Annotated[str | None, typer.Option(envvar="MERCATO_ADMIN_PASSWORD",
                                                 help="Or set MERCATO_ADMIN_PASSWORD; asked for when missing.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Create a super admin, or make an existing account one. Works non-interactively."""
    # lazy: a command loads only what it runs (start-up time of mercato)
    from mercato.access import service as access
    from mercato.accounts import repository
    from mercato.accounts import service as accounts
    from mercato.app.bootstrap import prepare_database
    from mercato.app.runtime import Runtime
    from mercato.kit.errors import MercatoError

    settings = _settings(data_dir)
    if settings.is_sqlite:
        prepare_database(settings)
    if password is None:
        if not sys.stdin.isatty():
            fail("give --password or set MERCATO_ADMIN_PASSWORD")
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)

    async def run() -> str:
        rt = Runtime.from_settings(settings)
        try:
            async with rt.db.transaction() as session:
                user = await repository.by_email(session, email)
                if user is None:
                    await accounts.create_user(session, rt, email=email, password=password,
                                               roles=["user", "super_admin"])
                    return f"created super admin {email}"
                await access.grant_role(session, user.id, "super_admin")
                return f"{email} is now a super admin"
        finally:
            await rt.close()

    try:
        typer.echo(asyncio.run(run()))
    except MercatoError as error:
        fail(error.detail)


@app.command()
def worker(data_dir: DataDir = None) -> None:
    """Run event handlers, the relay and the scheduled sweeps (scaled form: set MERCATO_BROKER_URL)."""
    settings = _settings(data_dir)
    if not settings.broker_url:
        typer.echo("note: no MERCATO_BROKER_URL; this worker relays and delivers in-process", err=True)
    with startup_gc.paused():  # until the bus runs (kit/startup_gc.py)
        asyncio.run(_run_bus(settings, role="worker" if settings.broker_url else "embedded"))


@app.command()
def scheduler(data_dir: DataDir = None) -> None:
    """Run only the scheduled sweeps (expiry, polling, redelivery, clean-ups).

    Optional: every worker also runs them, and a lease per sweep keeps one run at a time.
    """
    asyncio.run(_run_bus(_settings(data_dir), role="scheduler"))


async def _run_bus(settings: Settings, *, role: str) -> None:
    # lazy: a command loads only what it runs (start-up time of mercato)
    from mercato.app.runtime import Runtime
    from mercato.bus.registry import load_handlers
    from mercato.bus.service import Bus

    rt = Runtime.from_settings(settings)
    bus = Bus(settings, rt.db, load_handlers(), role=role, live=rt.live, runtime=rt)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await bus.start()
    startup_gc.settle()
    metrics = None
    if settings.metrics_port is not None:
        # lazy: a command loads only what it runs (start-up time of mercato)
        from mercato.ops import gauges
        from mercato.ops.metrics_server import MetricsServer

        metrics = MetricsServer(settings.metrics_host, settings.metrics_port,
                                before_scrape=lambda: gauges.refresh(rt.db, bus.registry))
        await metrics.start()
    typer.echo(f"mercato {role} running ({_describe(settings)}, broker {settings.broker_url or 'in-process'}"
               + (f", metrics on :{metrics.port}" if metrics else "") + ")", err=True)
    try:
        await stop.wait()
    finally:
        if metrics is not None:
            await metrics.stop()
        await bus.stop()
        await rt.close()


def _describe(settings: Settings) -> str:
    url = settings.resolved_database_url
    return f"SQLite at {url.split(':///', 1)[1]}" if settings.is_sqlite else "PostgreSQL"


def main() -> None:  # pragma: no cover - console entry point
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()


# Publisher commands (login, package, listing, publish, submit, status, yank, download): mercato/cli/publisher/
from mercato.cli import publisher as _publisher  # noqa: E402

_publisher.register(app)

# Licence commands (licence verify): mercato/cli/licence.py
from mercato.cli import licence as _licence  # noqa: E402

_licence.register(app)

# The install agent (agent --server --token --root): mercato/cli/agent.py
from mercato.cli import agent as _agent  # noqa: E402

_agent.register(app)
