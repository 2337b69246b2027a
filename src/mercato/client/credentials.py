"""Where the CLI keeps its sign-in: ``<config dir>/credentials.json``, readable only by the owner.

The config dir is ``MERCATO_CONFIG_DIR``, or the platform's application folder for
``mercato`` (``~/.config/mercato`` on Linux). The file holds the server, an API token and
the email it belongs to; options and ``MERCATO_SERVER`` / ``MERCATO_TOKEN`` override it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from mercato.client.errors import ClientError
from mercato.client.http import normalize_server

FILENAME = "credentials.json"


@dataclass(frozen=True)
class Credentials:
    server: str
    token: str
    email: str | None = None
    token_id: str | None = None
    expires_at: str | None = None


def config_dir() -> Path:
    configured = os.environ.get("MERCATO_CONFIG_DIR")
    if configured:
        return Path(configured).expanduser()

    return Path(click.get_app_dir("mercato"))


def credentials_path() -> Path:
    return config_dir() / FILENAME


def load() -> Credentials | None:
    """The stored sign-in, or None when there is none; a damaged file is a readable error."""
    path = credentials_path()
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ClientError(f"cannot read {path}: {error.strerror or error}") from error
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or not isinstance(data.get("server"), str) \
                or not isinstance(data.get("token"), str):
            raise ValueError("server and token are required")
    except ValueError as error:
        raise ClientError(f"{path} is damaged ({error}); run `mercato login` again") from error
    return Credentials(server=data["server"], token=data["token"], email=data.get("email"),
                       token_id=data.get("token_id"), expires_at=data.get("expires_at"))


def save(credentials: Credentials) -> Path:
    """Write the file atomically with mode 0600 (inside a 0700 folder when we create it)."""
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{FILENAME}.{os.getpid()}.tmp")
    payload = {key: value for key, value in asdict(credentials).items() if value is not None}
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2)
            handle.write("\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def remove() -> bool:
    path = credentials_path()
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def resolve(server: str | None, token: str | None) -> Credentials:
    """The server and token to use: explicit values (options or environment) over the stored ones."""
    stored = load() if not (server and token) else None
    if stored is not None and server and normalize_server(server) != normalize_server(stored.server) and not token:
        raise ClientError(f"you are signed in to {stored.server}, not {normalize_server(server)}; "
                          f"run `mercato login --server {normalize_server(server)}` or pass --token")
    chosen_server = server or (stored.server if stored else None)
    chosen_token = token or (stored.token if stored else None)
    if not chosen_server or not chosen_token:
        if not chosen_server and chosen_token:
            raise ClientError("no server given; pass --server URL (or set MERCATO_SERVER)")
        raise ClientError("not signed in; run `mercato login --server URL` first "
                          "(or pass --token / set MERCATO_TOKEN)")
    return Credentials(server=normalize_server(chosen_server), token=chosen_token,
                       email=stored.email if stored else None)
