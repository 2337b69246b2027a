"""``mercato package init|build``: scaffold and build package archives, and read the manifest
(``mercato.toml``) of a package folder or archive for the commands that publish it."""

from __future__ import annotations

import tarfile
import tomllib
import zipfile
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from mercato.cli.publisher.common import fail, one_line_errors, say

MANIFEST = "mercato.toml"


class Kind(str, Enum):
    app = "app"
    plugin = "plugin"
    game = "game"


class ArchiveFormat(str, Enum):
    tar_gz = "tar.gz"
    zip = "zip"


package_app = typer.Typer(help="Scaffold and build package archives (mercato.toml + payload).",
                          no_args_is_help=True)


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


# --- reading the manifest ----------------------------------------------------------------

def manifest_package(path: Path) -> dict[str, Any]:
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
