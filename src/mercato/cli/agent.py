"""``mercato agent --server URL --token TOKEN --root DIR``: the install agent of an instance."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from mercato.cli.licence import keys_from_option
from mercato.cli.output import fail


def agent(
    server: Annotated[str, typer.Option("--server", envvar="MERCATO_SERVER", show_default=False,
                                        help="The store's URL, e.g. https://store.example.")],
    token: Annotated[str, typer.Option("--token", envvar="MERCATO_AGENT_TOKEN", show_default=False,
                                       help="The instance token (mci_…) shown when the instance was registered.")],
    root: Annotated[Path, typer.Option("--root", envvar="MERCATO_AGENT_ROOT", show_default=False,
                                       help="Where installations go (one folder each).")],
    host_version: Annotated[str | None, typer.Option(
        "--host-version", help="The host version manifests' \\[compatibility] host is checked against.")] = None,
    host: Annotated[str | None, typer.Option(
        "--host", help="The host name launch URLs use (default: this machine's name).")] = None,
    heartbeat: Annotated[float, typer.Option("--heartbeat", min=1.0,
                                             help="Seconds between heartbeats.")] = 15.0,
    poll_wait: Annotated[float, typer.Option("--poll-wait", min=1.0, max=30.0,
                                             help="Seconds a task poll waits on the store.")] = 25.0,
    public_key: Annotated[str | None, typer.Option(
        "--public-key", show_default=False,
        help="Pin the store's public key (base64, or a file with it or with GET /api/v1/keys); "
             "default: fetched from the store.")] = None,
) -> None:
    """Run the install agent: heartbeat, take tasks, download, verify, install, report."""
    # lazy: a command loads only what it runs (start-up time of mercato)
    from mercato.agent.client import AgentClient
    from mercato.agent.errors import AgentError
    from mercato.agent.files import FilesDriver
    from mercato.agent.progress import TerminalProgress
    from mercato.agent.resources import HOST_VERSION
    from mercato.agent.runner import Agent, TokenRefused
    from mercato.client.errors import ClientError
    from mercato.client.schemas import PublicKey

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    pinned: list[PublicKey] | None = None
    if public_key:
        pinned = [PublicKey(id=key.id, algorithm=key.algorithm, public_key=key.public_key)
                  for key in keys_from_option(public_key)]
    try:
        driver = FilesDriver(root)
    except OSError as error:
        fail(f"cannot use {root} as the agent's root: {error.strerror or error}")
        return
    terminal = TerminalProgress()

    async def run() -> None:
        async with AgentClient(server, token) as client:
            worker = Agent(client, driver, host_version=host_version or HOST_VERSION, host=host,
                           heartbeat_seconds=heartbeat, poll_wait=poll_wait, terminal=terminal,
                           public_keys=pinned)
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, worker.stop)
            terminal.note(f"mercato agent: {driver.root} for {client.server} (driver files)")
            await worker.run()
            terminal.note("mercato agent stopped")

    try:
        with driver.locked():
            asyncio.run(run())
    except TokenRefused as error:
        fail(str(error))
    except (AgentError, ClientError) as error:
        fail(str(error))


def register(app: typer.Typer) -> None:
    """Add ``mercato agent`` to the ``mercato`` command."""
    app.command("agent")(agent)
