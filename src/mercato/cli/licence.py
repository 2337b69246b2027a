"""``mercato licence verify FILE``: check a licence document offline.

The document is what ``GET /api/v1/library/{listing_id}/license`` returns. It verifies
against a public key given with ``--public-key`` (base64, or a file holding it or the
JSON of ``GET /api/v1/keys``), or against the keys a store publishes (``--server``,
fetched once, no sign-in). Success prints one line on stdout and exits 0; anything else
prints one ``error: …`` line on stderr and exits 1.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from mercato.cli.output import fail

if TYPE_CHECKING:
    from mercato.kit.keys import PublicKey

licence_app = typer.Typer(help="Verify licences issued by a store.", no_args_is_help=True)

LICENCE_FIELDS = ("id", "listing_id", "listing_slug", "user_id", "order_id", "issued_at", "expires_at", "key")


def _fail(message: str) -> NoReturn:
    fail(" ".join(message.split()))
    raise AssertionError("unreachable")  # pragma: no cover - fail() always raises


def _read_document(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        _fail(f"{path}: {error.strerror or error}")
    except UnicodeDecodeError:
        _fail(f"{path} is not a licence: not UTF-8 text")
    try:
        document = json.loads(text)
    except ValueError:
        _fail(f"{path} is not a licence: not valid JSON")
    if not isinstance(document, dict) or not isinstance(document.get("licence"), dict):
        _fail(f"{path} is not a licence: no \"licence\" object")
    licence = document["licence"]
    missing = [name for name in LICENCE_FIELDS if name not in licence]
    if missing:
        _fail(f"{path} is not a licence: missing {', '.join(missing)}")
    for name in ("key_id", "algorithm", "signature"):
        if not isinstance(document.get(name), str):
            _fail(f"{path} is not signed: no {name}")
    return document


def keys_from_option(value: str) -> list[PublicKey]:
    """``value`` is base64 of a raw Ed25519 key, or a file holding that or ``GET /keys`` JSON."""
    # lazy: a command loads only what it runs (start-up time of mercato)
    from mercato.kit.keys import PublicKey, SigningKeyInvalid

    text = value
    candidate = Path(value)
    try:
        if candidate.is_file():
            text = candidate.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError) as error:
        _fail(f"cannot read the public key {value}: {error}")
    text = text.strip()
    try:
        published = json.loads(text)
    except ValueError:
        published = None
    try:
        if isinstance(published, dict) and isinstance(published.get("keys"), list):
            return [PublicKey.from_base64(str(key.get("public_key"))) for key in published["keys"]
                    if isinstance(key, dict)]
        return [PublicKey.from_base64(text)]
    except SigningKeyInvalid:
        _fail("the public key is not base64 of a 32-byte Ed25519 key (nor a file holding one, "
              "nor the JSON of GET /api/v1/keys)")


def _keys_from_server(server: str) -> list[PublicKey]:
    # lazy: a command loads only what it runs (start-up time of mercato)
    from mercato.client import ClientError, MercatoClient
    from mercato.kit.keys import PublicKey, SigningKeyInvalid

    try:
        with MercatoClient(server) as client:
            published = client.public_keys()
        return [PublicKey.from_base64(key.public_key) for key in published]
    except ClientError as error:
        _fail(f"cannot fetch the store's public keys: {error}")
    except SigningKeyInvalid:
        _fail(f"{server} publishes a public key that is not an Ed25519 key")


def _expired(expires_at: object) -> str | None:
    """The expiry, when the licence has one and it has passed."""
    if expires_at is None:
        return None
    try:
        when = datetime.fromisoformat(str(expires_at))
    except ValueError:
        return f"an unreadable expiry {expires_at!r}"
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return str(expires_at) if when <= datetime.now(UTC) else None


@licence_app.command("verify")
def verify(
    file: Annotated[Path, typer.Argument(help="The licence document (JSON).", show_default=False)],
    public_key: Annotated[str | None, typer.Option(
        "--public-key", show_default=False,
        help="The store's public key: base64, or a file with it or with the JSON of GET /api/v1/keys.")] = None,
    server: Annotated[str | None, typer.Option(
        "--server", envvar="MERCATO_SERVER", show_default=False,
        help="Fetch the public keys from this store instead (GET /api/v1/keys).")] = None,
) -> None:
    """Check that a licence was signed by the store and not changed since. Offline with
    --public-key; with --server, only the store's public keys are fetched."""
    # lazy: a command loads only what it runs (start-up time of mercato)
    from mercato.kit.keys import verify_document

    document = _read_document(file)
    if public_key:
        keys = keys_from_option(public_key)
    elif server:
        keys = _keys_from_server(server)
    else:
        _fail("give the store's public key (--public-key) or its URL (--server)")
    if not any(key.id == document["key_id"] for key in keys):
        _fail(f"the licence was signed by key {document['key_id']}, which is not among the given public keys")
    if not verify_document(document, keys):
        _fail("the signature does not match: the licence was changed after it was signed")
    licence = document["licence"]
    expired = _expired(licence.get("expires_at"))
    if expired:
        _fail(f"the licence is genuine but expired ({expired})")
    order = licence.get("order_id") or "none"
    typer.echo(f"valid: {licence['listing_slug']} for {licence['user_id']}, order {order}")


def register(app: typer.Typer) -> None:
    """Add ``mercato licence`` to the ``mercato`` command."""
    app.add_typer(licence_app, name="licence")
