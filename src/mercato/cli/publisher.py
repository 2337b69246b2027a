"""Publisher commands: ``login``, ``logout``, ``package init|build``, ``publish``, ``submit``,
``status``, ``yank`` and ``download``.

They talk to a store through :mod:`mercato.client`. Every failure is one readable line on
stderr (``error: <code>: <what happened>``) and exit code 1; output meant for scripts (an
archive path, a downloaded file) is alone on stdout, messages go to stderr.
"""

from __future__ import annotations

import os
import socket
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from mercato.client import MercatoClient, Version

TOKEN_NAME_PREFIX = "mercato-cli@"
TOKEN_DAYS = 90
MANIFEST = "mercato.toml"

ServerOption = Annotated[str | None, typer.Option(
    "--server", envvar="MERCATO_SERVER", show_default=False,
    help="The store's URL, e.g. https://store.example.org (default: the one you logged in to).")]
TokenOption = Annotated[str | None, typer.Option(
    "--token", envvar="MERCATO_TOKEN", show_default=False,
    help="An API token (default: the one saved by `mercato login`).")]
ListingOption = Annotated[str, typer.Option("--listing", "-l", help="The listing's slug (or id).")]


class Kind(str, Enum):
    app = "app"
    plugin = "plugin"
    game = "game"


class ArchiveFormat(str, Enum):
    tar_gz = "tar.gz"
    zip = "zip"


package_app = typer.Typer(help="Scaffold and build package archives (mercato.toml + payload).",
                          no_args_is_help=True)
listing_app = typer.Typer(help="Create the listing a package is published to.", no_args_is_help=True)


# --- error handling ----------------------------------------------------------------------

def fail(message: str) -> NoReturn:
    # cli.main imports this module to register its commands: its fail() is taken when called
    from mercato.cli.main import fail as main_fail

    main_fail(" ".join(str(message).split()))
    raise AssertionError("unreachable")  # pragma: no cover - fail() always raises


def say(message: str) -> None:
    """A message for the person at the terminal (stderr; stdout stays for what scripts capture)."""
    typer.echo(message, err=True)


@contextmanager
def one_line_errors(*, signed_in: bool = True) -> Iterator[None]:
    """Turn every expected failure into ``error: …`` on one line and exit 1; never a traceback."""
    # lazy: a command loads only what it runs (start-up time of mercato)
    import click

    from mercato.client import ApiError, ClientError

    try:
        yield
    except (typer.Exit, typer.Abort, click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
        raise
    except ApiError as error:
        hint = ""
        if error.status == 401 and signed_in and "sign in" not in str(error) and "login" not in str(error):
            hint = "run `mercato login` to sign in again"
        elif error.status == 401 and signed_in:
            hint = "run `mercato login`"
        elif error.status == 403 and signed_in:
            hint = "your account or token lacks the permission for this"
        fail(f"{str(error).rstrip('.')}; {hint}" if hint else str(error))
    except ClientError as error:
        fail(str(error))
    except KeyboardInterrupt:
        fail("interrupted")
    except Exception as error:  # the user gets one line, a developer sets MERCATO_DEBUG
        # lazy: a command loads only what it runs (start-up time of mercato)
        from mercato.kit.errors import MercatoError

        if isinstance(error, MercatoError):
            fail(mercato_error_line(error))
        if isinstance(error, OSError):
            where = f"{error.filename}: " if error.filename else ""
            fail(f"{where}{error.strerror or error}")
        if os.environ.get("MERCATO_DEBUG"):
            raise
        fail(f"unexpected {type(error).__name__}: {error} (set MERCATO_DEBUG=1 for the traceback)")


def mercato_error_line(error: Any) -> str:
    """A package or domain error (``code``, ``detail``, maybe ``errors``) as one line."""
    # lazy: a command loads only what it runs (start-up time of mercato)
    from mercato.client.errors import format_field_errors

    code = getattr(error, "code", "error")
    detail = " ".join(str(getattr(error, "detail", "") or error).split())
    fields = format_field_errors(list(getattr(error, "errors", None) or []), limit=5,
                                 manifest=str(code).startswith("manifest_"), known=detail)
    if fields:
        generic = detail in {"", getattr(error, "title", "")}
        detail = fields if generic else f"{detail.rstrip('.')}: {fields}"
    return f"{code}: {detail}"


@contextmanager
def connect(server: str | None, token: str | None) -> Iterator[MercatoClient]:
    # lazy: a command loads only what it runs (start-up time of mercato)
    from mercato.client import MercatoClient, credentials

    found = credentials.resolve(server, token)
    with MercatoClient(found.server, found.token) as client:
        yield client


# --- progress ----------------------------------------------------------------------------

def _stderr() -> Console:
    # lazy: a command loads only what it runs (start-up time of mercato)
    from rich.console import Console

    return Console(stderr=True)


class TransferProgress:
    """A rich progress bar (bytes, speed, time left) on stderr for one transfer.

    It appears with the first bytes, so a transfer refused at once leaves no empty bar, and
    only on a terminal (logs of scripts and CI get the summary line instead). Use as a
    context manager; the instance itself is the ``progress(done, total)`` callback.
    """

    def __init__(self, description: str, *, finished_description: str | None = None) -> None:
        self.description = description
        self.finished_description = finished_description
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._console = _stderr()
        self.enabled = self._console.is_terminal

    def __enter__(self) -> TransferProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._progress is None:
            # lazy: a command loads only what it runs (start-up time of mercato)
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                      TransferSpeedColumn(), TimeRemainingColumn(), console=self._console)
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=total or None)
        assert self._task is not None
        self._progress.update(self._task, completed=done, total=total or None)
        if total and done >= total and self.finished_description:
            self._progress.update(self._task, description=self.finished_description)


# --- login -------------------------------------------------------------------------------

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


# --- packages ----------------------------------------------------------------------------

@package_app.command("init")
def package_init(
    name: Annotated[str, typer.Argument(help="The package's name, which is also the listing's slug.")],
    kind: Annotated[Kind, typer.Option(help="What the package is.")] = Kind.app,
    directory: Annotated[Path, typer.Option("--dir", help="Where to create the package folder.",
                                            file_okay=False)] = Path("."),
) -> None:
    """Write a valid package skeleton (mercato.toml and a payload) into DIR/NAME."""
    with one_line_errors():
        # lazy: a command loads only what it runs (start-up time of mercato)
        from mercato.packages.scaffold import init_package

        created = init_package(directory, name, kind=kind.value)
        typer.echo(str(created))
        say(f"next: edit {Path(created) / MANIFEST}, then `mercato package build {created}`")


@package_app.command("build")
def package_build(
    source: Annotated[Path, typer.Argument(help="The package folder (holding mercato.toml).")],
    output_dir: Annotated[Path | None, typer.Option("--output-dir", "-o", file_okay=False, show_default=False,
                                                    help="Where to write the archive (default: SOURCE/dist).")
                          ] = None,
    fmt: Annotated[ArchiveFormat, typer.Option("--format", help="Archive format.")] = ArchiveFormat.tar_gz,
) -> None:
    """Validate the manifest and payload with the store's own rules and write the archive.

    Only the archive's path is printed on stdout, so scripts can capture it.
    """
    with one_line_errors():
        if not source.exists():
            fail(f"{source}: no such folder")
        if not source.is_dir():
            fail(f"{source} is not a folder; give the package folder that holds {MANIFEST}")
        # lazy: a command loads only what it runs (start-up time of mercato)
        from mercato.packages.scaffold import build_package

        archive = build_package(source, output_dir=output_dir, fmt=fmt.value)
        typer.echo(str(archive))


# --- publishing --------------------------------------------------------------------------

def publish(
    file: Annotated[Path, typer.Argument(help="The package archive (.tar.gz or .zip).", show_default=False)],
    listing: Annotated[str | None, typer.Option(
        "--listing", "-l", show_default=False,
        help="The listing's slug (default: the package name from the archive's mercato.toml).")] = None,
    submit: Annotated[bool, typer.Option("--submit/--no-submit", help="Submit for review after the upload.")
                      ] = True,
    server: ServerOption = None, token: TokenOption = None,
) -> None:
    """Upload a package as a new version of a listing and submit it for review."""
    # lazy: a command loads only what it runs (start-up time of mercato)
    from mercato.client import ApiError, ClientError

    with one_line_errors():
        if not file.is_file():
            fail(f"{file}: no such file" if not file.exists() else f"{file} is not a file")
        slug = listing or listing_from_archive(file)
        with connect(server, token) as client:
            try:
                with TransferProgress(f"uploading {file.name}",
                                      finished_description=f"uploaded {file.name}, the store is checking it"
                                      ) as progress:
                    version = client.upload_version(slug, file, progress=progress)
            except ApiError as error:
                if error.code != "listing_not_found":
                    raise
                fail(f"{error} — there is no listing {slug} yet (or you can't see it); create it with "
                     f"`mercato listing create {file} --publisher <your publisher>`")
            size = f"{version.size:,} bytes" if version.size is not None else "size unknown"
            typer.echo(f"uploaded {slug} {version.version} ({size}, sha256 {version.sha256 or '?'})")
            if not submit:
                say(f"not submitted; when ready: mercato submit {version.version} --listing {slug}")
                return
            try:
                version = client.submit_version(slug, version.version)
            except ClientError as error:  # say what state things were left in
                fail(f"{error} — {slug} {version.version} was uploaded but not submitted; "
                     f"retry with `mercato submit {version.version} --listing {slug}`")
            _report_submission(slug, version)


@listing_app.command("create")
def listing_create(
    package: Annotated[Path, typer.Argument(
        help="The package: its folder (with mercato.toml) or a built archive.", show_default=False)],
    publisher: Annotated[str, typer.Option("--publisher", "-p", show_default=False,
                                           help="The publisher's slug (you must be a member).")],
    name: Annotated[str | None, typer.Option(help="The name shown in the store (default: the package name).")
                    ] = None,
    server: ServerOption = None, token: TokenOption = None,
) -> None:
    """Create the draft listing of a package (slug, kind, summary, homepage and licence from
    its mercato.toml), so `mercato publish` can upload to it."""
    with one_line_errors():
        fields = _manifest_package(package)
        slug = fields.get("name")
        if not isinstance(slug, str) or not slug:
            fail(f"{package} has no [package] name in its {MANIFEST}")
        with connect(server, token) as client:
            created = client.create_listing(
                publisher=publisher, slug=slug, name=name or slug, kind=str(fields.get("kind") or "app"),
                summary=str(fields.get("summary") or "")[:140], homepage=fields.get("homepage") or None,
                license=fields.get("license") or None)
        typer.echo(f"created listing {created.slug} ({created.kind}, {created.status}) for publisher {publisher}; "
                   f"next: mercato publish <archive>")


def _manifest_package(path: Path) -> dict[str, Any]:
    """The ``[package]`` table of a package folder's or archive's mercato.toml."""
    try:
        raw = (path / MANIFEST).read_bytes() if path.is_dir() else _read_manifest(path)
        table = tomllib.loads(raw.decode("utf-8")).get("package", {})
    except (OSError, tarfile.TarError, zipfile.BadZipFile, UnicodeDecodeError, tomllib.TOMLDecodeError,
            AttributeError, ValueError) as error:
        fail(f"cannot read {MANIFEST} from {path} ({error})")
    if not isinstance(table, dict):
        fail(f"{path}: [package] in {MANIFEST} is not a table")
    return table


def submit(version: Annotated[str, typer.Argument(help="The version to submit, e.g. 1.4.0.")],
           listing: ListingOption, server: ServerOption = None, token: TokenOption = None) -> None:
    """Submit an uploaded version for review (runs the automated checks first)."""
    with one_line_errors(), connect(server, token) as client:
        _report_submission(listing, client.submit_version(listing, version))


def _report_submission(slug: str, version: Version) -> None:
    typer.echo(f"submitted {slug} {version.version}: status {version.status}")
    checks = version.checks
    if checks is None:
        typer.echo("automated checks: pending")
        return
    findings = checks.findings
    score = "n/a" if checks.risk_score is None else f"{checks.risk_score:g}"
    typer.echo(f"automated checks: risk score {score}, {len(findings)} finding{'s' if len(findings) != 1 else ''}")
    for finding in findings[:20]:
        where = f" ({finding.path})" if finding.path else ""
        typer.echo(f"  {finding.severity or 'info'} {finding.code}: {finding.message}{where}")
    if len(findings) > 20:
        typer.echo(f"  … and {len(findings) - 20} more (see `mercato status --listing {slug}` or the console)")


def listing_from_archive(path: Path) -> str:
    """The package name in the archive's mercato.toml (PACKAGE.md: it is the listing's slug)."""
    try:
        raw = _read_manifest(path)
        name = tomllib.loads(raw.decode("utf-8")).get("package", {}).get("name")
    except (OSError, tarfile.TarError, zipfile.BadZipFile, UnicodeDecodeError, tomllib.TOMLDecodeError,
            AttributeError, ValueError) as error:
        fail(f"cannot read the package name from {path} ({error}); pass --listing SLUG")
    if not isinstance(name, str) or not name:
        fail(f"{path} has no [package] name in its {MANIFEST}; pass --listing SLUG")
    return name


def _read_manifest(path: Path, limit: int = 1024 * 1024) -> bytes:
    names = {MANIFEST, "./" + MANIFEST}
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.filename in names and info.file_size <= limit:
                    return archive.read(info)
    else:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                if member.name in names and member.isfile() and member.size <= limit:
                    handle = archive.extractfile(member)
                    if handle is not None:
                        return handle.read(limit)
    raise ValueError(f"no {MANIFEST} at the archive's root")


def status(listing: Annotated[str | None, typer.Option("--listing", "-l", show_default=False,
                                                       help="Show this listing's versions.")] = None,
           publisher: Annotated[str | None, typer.Option("--publisher", "-p", show_default=False,
                                                         help="Show this publisher's listings.")] = None,
           server: ServerOption = None, token: TokenOption = None) -> None:
    """Show a listing's versions and where each is in review, or a publisher's listings."""
    # lazy: a command loads only what it runs (start-up time of mercato)
    from rich.console import Console
    from rich.table import Table

    with one_line_errors():
        if bool(listing) == bool(publisher):
            fail("give either --listing SLUG or --publisher SLUG")
        console = Console()
        with connect(server, token) as client:
            if listing:
                found = client.get_listing(listing)
                versions = client.list_versions(listing)
                latest = found.latest_version.version if found.latest_version else "none"
                console.print(f"{found.slug} ({found.name}): {found.status or 'unknown'}, latest version {latest}",
                              highlight=False, markup=False)
                table = Table("version", "status", "uploaded", "decision reason", box=None, pad_edge=False)
                for version in versions:
                    reason = version.decision_reason or ""
                    if version.yank_reason:
                        reason = f"yanked: {version.yank_reason}" + (f" ({reason})" if reason else "")
                    table.add_row(version.version, version.status, _when(version.created_at), reason or "-")
                console.print(table if versions else "no versions yet; upload one with `mercato publish`",
                              markup=False)
            else:
                assert publisher is not None
                listings = client.publisher_listings(publisher)
                table = Table("listing", "name", "kind", "status", "latest version", box=None, pad_edge=False)
                for item in listings:
                    table.add_row(item.slug, item.name, item.kind, item.status,
                                  item.latest_version.version if item.latest_version else "-")
                console.print(table if listings else f"{publisher} has no listings yet", markup=False)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


def yank(version: Annotated[str, typer.Argument(help="The version to yank, e.g. 1.4.0.")],
         listing: ListingOption,
         reason: Annotated[str, typer.Option(help="Why (shown to owners and reviewers).")],
         server: ServerOption = None, token: TokenOption = None) -> None:
    """Hide a version from new installs; people who have it keep it."""
    with one_line_errors(), connect(server, token) as client:
        yanked = client.yank_version(listing, version, reason)
        typer.echo(f"yanked {listing} {yanked.version}: status {yanked.status}")


def download(version: Annotated[str, typer.Argument(help="The version to download, e.g. 1.4.0.")],
             listing: ListingOption,
             output: Annotated[str | None, typer.Option(
                 "--output", "-o", show_default=False,
                 help="File to write, or a folder to put it in: an existing one, or a path ending in / "
                      "(default: the current folder).")] = None,
             allow_unsigned: Annotated[bool, typer.Option(
                 "--allow-unsigned",
                 help="Keep a download the store has not signed (versions are signed when approved); "
                      "the checksum is still checked and a wrong signature still fails.")] = False,
             server: ServerOption = None, token: TokenOption = None) -> None:
    """Download a version and verify its SHA-256 and the store's Ed25519 signature.

    The file's path is printed on stdout; a checksum or signature mismatch deletes it.
    """
    # lazy: a command loads only what it runs (start-up time of mercato)
    from mercato.client import verify_download

    with one_line_errors(), connect(server, token) as client:
        target = Path(output or ".")
        if output and output.endswith(("/", os.sep)):
            target.mkdir(parents=True, exist_ok=True)
        with TransferProgress(f"downloading {listing} {version}") as progress:
            result = client.download_version(listing, version, target, progress=progress)
        if not result.signature:
            if not allow_unsigned:
                result.path.unlink(missing_ok=True)
                fail(f"signature_missing: the store has not signed {listing} {version} (versions are signed "
                     "when approved); the download was discarded; pass --allow-unsigned to keep it anyway")
            say(f"warning: {listing} {version} is not signed by the store (not approved); "
                f"checksum verified: sha256 {result.sha256}")
            typer.echo(str(result.path))
            return
        try:
            key = verify_download(result, client.public_keys())
        except BaseException:
            result.path.unlink(missing_ok=True)
            raise
        say(f"verified: sha256 {result.sha256}, Ed25519 signature by key {key.id}")
        typer.echo(str(result.path))


# --- registration ------------------------------------------------------------------------

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
