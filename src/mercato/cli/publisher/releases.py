"""Publishing a release: ``listing create``, ``publish``, ``submit``, ``status``, ``yank`` and ``download``."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mercato.cli.publisher.common import (
    ListingOption,
    ServerOption,
    TokenOption,
    TransferProgress,
    connect,
    fail,
    one_line_errors,
    say,
)
from mercato.cli.publisher.packages import MANIFEST, listing_from_archive, manifest_package

if TYPE_CHECKING:
    from mercato.client import Version

listing_app = typer.Typer(help="Create the listing a package is published to.", no_args_is_help=True)


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
        fields = manifest_package(package)
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
