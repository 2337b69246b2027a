"""How the ``mercato`` command reports a failure: one readable line on stderr, never a traceback.
Apart from the command modules (``main`` imports them to register their commands), so each
of them imports it up front."""

from __future__ import annotations

import typer


def fail(message: str) -> None:
    """One readable line on stderr, exit 1: CLI errors are not tracebacks."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)
