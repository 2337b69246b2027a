"""``mercato.toml``: the manifest at the root of every package (``PACKAGE.md``).

:func:`parse_manifest` turns the file's bytes into a :class:`Manifest` or raises
:class:`~mercato.packages.errors.ManifestInvalid` with one ``{"loc", "msg", "type"}`` item per
problem; unknown tables and keys are refused by name (``extra="forbid"`` everywhere), so
a typo never passes silently. :func:`render_manifest` writes a manifest back as TOML (the
scaffold uses it). :func:`path_problem` is the one rule for paths inside a package, shared
by the archive scanner and by the manifest keys that name files.

The package, by job: ``paths.py`` (the path rule), ``fields.py`` (one validator per value),
``model.py`` (the tables), ``parse.py`` (reading) and ``render.py`` (writing).
"""

from mercato.packages.manifest.fields import network_entry_parts, validate_name
from mercato.packages.manifest.model import (
    KINDS,
    PLATFORMS,
    Compatibility,
    ConfigSection,
    Launch,
    Manifest,
    PackageInfo,
    Permissions,
    Requirements,
)
from mercato.packages.manifest.parse import MANIFEST_NAME, MAX_MANIFEST_BYTES, decode_manifest, parse_manifest
from mercato.packages.manifest.paths import path_key, path_problem
from mercato.packages.manifest.render import render_manifest

__all__ = [
    "KINDS", "MANIFEST_NAME", "MAX_MANIFEST_BYTES", "PLATFORMS", "Compatibility", "ConfigSection", "Launch",
    "Manifest", "PackageInfo", "Permissions", "Requirements", "decode_manifest", "network_entry_parts",
    "parse_manifest", "path_key", "path_problem", "render_manifest", "validate_name",
]
