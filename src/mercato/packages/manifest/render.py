"""Writing a :class:`~mercato.packages.manifest.model.Manifest` back as ``mercato.toml`` text
(the scaffold and the demo data use it); :func:`~mercato.packages.manifest.parse.parse_manifest`
reads the result back equal."""

from __future__ import annotations

import math
import re
from typing import Any

from mercato.packages.manifest.model import Manifest

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_COMMENTS = {
    "package": "identity: name is the listing's slug, version is SemVer 2.0",
    "compatibility": "host: a version range (omitted = any host); platforms, or [\"any\"]",
    "requirements": "checked against what the instance reports",
    "permissions": "shown to reviewers and users; scored by the checks",
    "dependencies": "other listings on the same store, with version ranges",
    "config": "install-time settings, a JSON Schema object",
    "launch": "what \"open\" returns: entry (a path in the package) or url",
}


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_string(value: str) -> str:
    out = ['"']
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif char in "\b\t\n\f\r":
            out.append({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    raise TypeError(f"Can't write {type(value).__name__} as TOML.")


def _toml_table(path: list[str], table: dict[str, Any], lines: list[str], comment: str | None) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict) or not v}
    tables = {k: v for k, v in table.items() if isinstance(v, dict) and v}
    if scalars or not tables:
        header = "[" + ".".join(_toml_key(p) for p in path) + "]"
        lines.append(f"{header}    # {comment}" if comment else header)
        lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in scalars.items())
        lines.append("")
    for key, sub in tables.items():
        _toml_table([*path, key], sub, lines, None)


def render_manifest(manifest: Manifest, *, comments: bool = True) -> str:
    """``manifest`` as ``mercato.toml`` text; :func:`parse_manifest` reads it back equal."""
    document = manifest.model_dump(mode="json", by_alias=True, exclude_none=True)
    lines: list[str] = []
    for table in ("package", "compatibility", "requirements", "permissions", "dependencies", "config", "launch"):
        value = document.get(table)
        if value is None or not value or getattr(manifest, table) == Manifest.model_fields[table].default:
            continue  # defaults are left out: parsing fills them in again
        _toml_table([table], value, lines, _COMMENTS[table] if comments else None)
    return "\n".join(lines).rstrip("\n") + "\n"
