"""``mercato login`` and ``mercato logout``: an API token for this machine, saved for the other commands."""

from __future__ import annotations

import os
import socket
import sys
from typing import Annotated

import typer

from mercato.cli.publisher.common import ServerOption, TokenOption, fail, one_line_errors, say

TOKEN_NAME_PREFIX = "mercato-cli@"
TOKEN_DAYS = 90


def login(server: ServerOption = None,
          email: Annotated[str | None, typer.Option(envvar="MERCATO_EMAIL", show_default=False,
                                                    help="Your account's email (asked for when missing).")] = None,
          ) -> None:
    """Sign in, create an API token for this machine and save it for the other commands.

    The password is read from a hidden prompt, or from MERCATO_PASSWORD in scripts.
    """
    # lazy: a command loads only what it runs (start-up time of mercato)
    from mercato.client import MercatoClient, credentials

    with one_line_errors(signed_in=False):
        if not server:
            stored = credentials.load()
            if stored is None:
                fail("give the store's URL: mercato login --server https://store.example.org")
            server = stored.server
        interactive = sys.stdin.isatty()
        if not email:
            if not interactive:
                fail("give --email (or set MERCATO_EMAIL) when not in a terminal")
            email = typer.prompt("Email").strip()
        password = os.environ.get("MERCATO_PASSWORD")
        if not password:
            if not interactive:
                fail("set MERCATO_PASSWORD to log in when not in a terminal")
            password = typer.prompt("Password", hide_input=True)
        previous = credentials.load()
        with MercatoClient(server) as client:
            pair = client.login(email, password)
            name = (TOKEN_NAME_PREFIX + (socket.gethostname() or "unknown"))[:100]
            created = client.create_api_token(name, expires_in_days=TOKEN_DAYS, access_token=pair.access_token)
            if previous and previous.token_id and previous.server == client.server:
                try:  # the token this login replaces; it may belong to another account or be gone already
                    client.revoke_api_token(previous.token_id, access_token=pair.access_token)
                except Exception:  # best effort
                    pass
            try:  # the session token is not needed any more
                client.request("POST", "/auth/logout", token=pair.access_token,
                               json={"refresh_token": pair.refresh_token})
            except Exception:  # best effort; it expires in minutes anyway
                pass
            path = credentials.save(credentials.Credentials(
                server=client.server, token=created.token, email=email, token_id=created.id,
                expires_at=created.expires_at.isoformat() if created.expires_at else None))
        until = f", valid until {created.expires_at:%Y-%m-%d}" if created.expires_at else ""
        typer.echo(f"logged in to {client.server} as {email}; API token {created.name!r} saved to {path}{until}")


def logout(server: ServerOption = None, token: TokenOption = None) -> None:
    """Revoke the saved API token on the store and forget it on this machine."""
    # lazy: a command loads only what it runs (start-up time of mercato)
    from mercato.client import MercatoClient, credentials

    with one_line_errors():
        stored = credentials.load()
        if stored is None:
            say("not logged in; nothing to do")
            return
        try:
            with MercatoClient(server or stored.server, token or stored.token) as client:
                if stored.token_id:
                    client.revoke_api_token(stored.token_id)
        except Exception as error:  # forgetting locally still helps
            say(f"warning: could not revoke the token on the store ({error}); revoke it in the console")
        credentials.remove()
        typer.echo(f"logged out of {stored.server}")
