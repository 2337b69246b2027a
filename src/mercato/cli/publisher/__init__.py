"""Publisher commands: ``login``, ``logout``, ``package init|build``, ``listing create``, ``publish``,
``submit``, ``status``, ``yank`` and ``download``.

They talk to a store through :mod:`mercato.client`. Every failure is one readable line on
stderr (``error: <code>: <what happened>``) and exit code 1; output meant for scripts (an
archive path, a downloaded file) is alone on stdout, messages go to stderr.

The commands live here by job: :mod:`.account` (login, logout), :mod:`.packages` (package
init|build), :mod:`.releases` (listing create, publish, submit, status, yank, download);
:mod:`.common` holds what they share.
"""

from __future__ import annotations

import typer

from mercato.cli.publisher.account import login, logout
from mercato.cli.publisher.packages import package_app
from mercato.cli.publisher.releases import download, listing_app, publish, status, submit, yank


def register(app: typer.Typer) -> None:
    """Add the publisher commands to the ``mercato`` command."""
    app.command()(login)
    app.command()(logout)
    app.add_typer(package_app, name="package")
    app.add_typer(listing_app, name="listing")
    app.command()(publish)
    app.command()(submit)
    app.command()(status)
    app.command()(yank)
    app.command()(download)
