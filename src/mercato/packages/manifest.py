"""``mercato.toml``: the manifest at the root of every package (``PACKAGE.md``).

:func:`parse_manifest` turns the file's bytes into a :class:`Manifest` or raises
:class:`~mercato.packages.errors.ManifestInvalid` with one ``{"loc", "msg", "type"}`` item per
problem; unknown tables and keys are refused by name (``extra="forbid"`` everywhere), so
a typo never passes silently. :func:`render_manifest` writes a manifest back as TOML (the
scaffold uses it). :func:`path_problem` is the one rule for paths inside a package, shared
by the archive scanner and by the manifest keys that name files.
"""

from __future__ import annotations

import ipaddress
import math
import re
import tomllib
import unicodedata
from collections.abc import Iterator
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from mercato.kit import semver
from mercato.packages.errors import ManifestInvalid

MANIFEST_NAME = "mercato.toml"
MAX_MANIFEST_BYTES = 256 * 1024
MAX_PATH_LENGTH = 1024
MAX_SEGMENT_BYTES = 255
MAX_URL_LENGTH = 2000
MAX_SCHEMA_DEPTH = 32
MAX_LIST_ITEMS = 100
MAX_REQUIREMENT = 2**31 - 1
PLATFORMS = ("any", "linux-x64", "linux-arm64", "macos-x64", "macos-arm64", "windows-x64", "windows-arm64")
KINDS = ("app", "plugin", "game")

_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])")
_DRIVE = re.compile(r"[A-Za-z]:")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_LICENSE = re.compile(r"[A-Za-z0-9.+\-:() ]+")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


# --- paths -------------------------------------------------------------------------------

def path_problem(path: str) -> str | None:
    """Why ``path`` is not a safe member path (relative, normalised, portable), or None.

    Refused: empty paths or segments, absolute paths, ``.`` and ``..`` segments, drive
    letters and any ``:``, backslashes, NUL, control and invisible characters (bidi
    overrides, zero-width characters), names ending in a space or a dot (Windows drops
    those), names over 255 bytes, paths over 1024 characters, and paths that Unicode
    compatibility normalisation (NFKC) turns into any of these (a fullwidth ``／``, a
    one-dot leader ``․``).
    """
    if not path:
        return "the path is empty"
    if len(path) > MAX_PATH_LENGTH:
        return f"the path is longer than {MAX_PATH_LENGTH} characters"
    for char in path:
        if char == "\x00":
            return "it contains a NUL character"
        if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
            return f"it contains the control or invisible character U+{ord(char):04X}"
    problem = _plain_path_problem(path)
    if problem is not None:
        return problem
    normalised = unicodedata.normalize("NFKC", path)
    if normalised != path and (_plain_path_problem(normalised) is not None
                               or normalised.count("/") != path.count("/")):
        return f"it turns into the unsafe path {normalised!r} under Unicode normalisation (NFKC)"
    return None


def _plain_path_problem(path: str) -> str | None:
    if "\\" in path:
        return "it contains a backslash; separate folders with '/'"
    if path.startswith("/"):
        return "it is absolute; paths must be relative to the package root"
    if _DRIVE.match(path):
        return "it starts with a drive letter; paths must be relative to the package root"
    if ":" in path:
        return "it contains ':', which is not portable (drive letters, alternate data streams)"
    for segment in path.split("/"):
        if segment == "":
            return "it has an empty segment ('//', or a leading or trailing '/')"
        if segment in (".", ".."):
            return f"it has a {segment!r} segment; paths must be normalised and stay inside the package"
        if segment[-1] in " .":
            return f"the name {segment!r} ends with a space or a dot, which Windows drops"
        if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
            return f"a name is longer than {MAX_SEGMENT_BYTES} bytes"
    return None


def path_key(path: str) -> str:
    """What two paths that would land on the same file share (case and width folded)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", path).casefold())


# --- validators --------------------------------------------------------------------------

def validate_name(value: str) -> str:
    """``value`` if it is a valid package name / listing slug, else ValueError saying why."""
    if not 2 <= len(value) <= 64 or not _NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid name: use 2 to 64 lowercase letters, digits and dashes, "
            "not starting or ending with a dash (such as 'hello-notes')."
        )
    return value


def _valid_version(value: str) -> str:
    semver.parse_version(value)
    return value


def _valid_range(value: str) -> str:
    semver.parse_range(value)
    return value


def _valid_summary(value: str) -> str:
    if not value.strip():
        raise ValueError("The summary is empty; say in one line what the package does.")
    if len(value) > 140:
        raise ValueError(f"The summary has {len(value)} characters; keep it to 140.")
    if any(unicodedata.category(c) in _INVISIBLE_CATEGORIES for c in value):
        raise ValueError("The summary contains control or invisible characters; write one plain line.")
    return value


def _valid_license(value: str) -> str:
    if value == "proprietary":
        return value
    if not value.strip() or len(value) > 200 or not _LICENSE.fullmatch(value) or not _balanced(value):
        raise ValueError(
            f"{value!r} is not a licence: write an SPDX expression (such as 'MIT' or "
            "'Apache-2.0 OR MIT') or 'proprietary'."
        )
    return value


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def _url_problem(value: str) -> str | None:
    if len(value) > MAX_URL_LENGTH:
        return f"it is longer than {MAX_URL_LENGTH} characters"
    if any(c.isspace() or unicodedata.category(c) in _INVISIBLE_CATEGORIES for c in value):
        return "it contains spaces or control characters"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "it is not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "it is not an http:// or https:// URL with a host"
    return None


def _valid_homepage(value: str) -> str:
    if (problem := _url_problem(value)) is not None:
        raise ValueError(f"The homepage {value!r} is not valid: {problem}.")
    return value


def _valid_package_path(value: str) -> str:
    if (problem := path_problem(value)) is not None:
        raise ValueError(f"{value!r} is not a safe path inside the package: {problem}.")
    return value


def _valid_launch_url(value: str) -> str:
    placeholders = set(_PLACEHOLDER.findall(value))
    if placeholders - {"host", "port"}:
        unknown = ", ".join(sorted("{" + p + "}" for p in placeholders - {"host", "port"}))
        raise ValueError(f"The launch URL uses {unknown}; only {{host}} and {{port}} are filled in.")
    filled = value.replace("{host}", "host.example").replace("{port}", "8080")
    if "{" in filled or "}" in filled:
        raise ValueError("The launch URL has a stray '{' or '}'; only {host} and {port} are filled in.")
    if (problem := _url_problem(filled)) is not None:
        raise ValueError(f"The launch URL {value!r} is not valid: {problem}.")
    return value


def _valid_platforms(value: list[str]) -> list[str]:
    if not value:
        raise ValueError('List at least one platform, or ["any"].')
    if len(set(value)) != len(value):
        raise ValueError("A platform is listed twice.")
    if "any" in value and len(value) > 1:
        raise ValueError('"any" stands alone: list either ["any"] or specific platforms.')
    return value


def _hostname_ok(host: str) -> bool:
    if len(host) > 253:
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    return all(_LABEL.fullmatch(label) for label in host.split("."))


def network_entry_parts(entry: str) -> tuple[str, str | None]:
    """Split a network permission into host and port (``None`` = any port); ValueError if bad.

    Hosts: ``*``, ``*.example.org``, ``api.example.org``, ``192.0.2.7`` or ``[2001:db8::7]``.
    Ports: a number (1-65535), a range ``8000-8100`` or ``*``; leaving it out means any port.
    """
    hint = ("write 'host' or 'host:port' (such as 'api.example.org:443', '*.example.org', "
            "'[2001:db8::1]:8443' or 'example.org:8000-8100')")
    if not entry or len(entry) > 300 or any(c.isspace() for c in entry):
        raise ValueError(f"{entry!r} is not a network permission: {hint}.")
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{entry!r} is not a network permission: {hint}.") from None
        if rest and not rest.startswith(":"):
            raise ValueError(f"{entry!r} is not a network permission: {hint}.")
        port = rest[1:] if rest else None
    else:
        if entry.count(":") > 1:
            raise ValueError(f"{entry!r} is not a network permission: put IPv6 addresses in brackets; {hint}.")
        host, colon, port_text = entry.partition(":")
        port = port_text if colon else None
        bare = host[2:] if host.startswith("*.") else host
        if host != "*" and (not bare or not _hostname_ok(bare)):
            raise ValueError(f"{entry!r} is not a network permission: {hint}.")
    if port is not None and port != "*":
        low, dash, high = port.partition("-")
        numbers = (low, high) if dash else (low,)
        if not all(n.isdigit() and len(n) <= 5 and 1 <= int(n) <= 65535 for n in numbers) or (
                dash and int(low) > int(high)):
            raise ValueError(f"{entry!r} has an invalid port: use 1-65535, a range such as 8000-8100, or '*'.")
    return host, port


def _valid_network(value: list[str]) -> list[str]:
    for entry in value:
        network_entry_parts(entry)
    return value


def _valid_dependencies(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_LIST_ITEMS:
        raise ValueError(f"More than {MAX_LIST_ITEMS} dependencies.")
    for slug, requirement in value.items():
        try:
            validate_name(slug)
        except ValueError:
            raise ValueError(f"The dependency {slug!r} is not a listing slug (lowercase letters, digits and "
                             "dashes, 2 to 64 characters).") from None
        try:
            semver.parse_range(requirement)
        except ValueError as error:
            raise ValueError(f"The dependency {slug!r}: {error}") from None
    return value


def _json_problem(value: Any, depth: int = 0) -> str | None:
    if depth > MAX_SCHEMA_DEPTH:
        return f"it is nested more than {MAX_SCHEMA_DEPTH} levels deep"
    if isinstance(value, dict):
        for item in value.values():
            if (problem := _json_problem(item, depth + 1)) is not None:
                return problem
        return None
    if isinstance(value, list):
        for item in value:
            if (problem := _json_problem(item, depth + 1)) is not None:
                return problem
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return "it holds nan or inf, which JSON can't represent"
    if isinstance(value, str | int | float | bool):
        return None
    return f"it holds a {type(value).__name__} value, which JSON can't represent (quote dates as strings)"


def _valid_config_schema(value: dict[str, Any]) -> dict[str, Any]:
    if (problem := _json_problem(value)) is not None:
        raise ValueError(f"config.schema is not a JSON Schema: {problem}.")
    if value.get("type") != "object":
        raise ValueError('config.schema must describe an object: set type = "object" and list its properties.')
    try:
        Draft202012Validator.check_schema(value)
    except SchemaError as error:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        raise ValueError(f"config.schema is not a valid JSON Schema (draft 2020-12) at {where}: "
                         f"{error.message}") from None
    except RecursionError:
        raise ValueError("config.schema is nested too deeply.") from None
    return value


PackageName = Annotated[str, AfterValidator(validate_name)]
PackagePath = Annotated[str, AfterValidator(_valid_package_path)]
VersionText = Annotated[str, AfterValidator(_valid_version)]
RangeText = Annotated[str, AfterValidator(_valid_range)]
Platform = Literal["any", "linux-x64", "linux-arm64", "macos-x64", "macos-arm64", "windows-x64", "windows-arm64"]
Requirement = Annotated[int, Field(ge=0, le=MAX_REQUIREMENT)]


# --- the model ---------------------------------------------------------------------------

class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PackageInfo(_Table):
    """``[package]``: identity and store metadata."""

    name: PackageName
    version: VersionText
    kind: Literal["app", "plugin", "game"]
    summary: Annotated[str, AfterValidator(_valid_summary)]
    license: Annotated[str, AfterValidator(_valid_license)]
    homepage: Annotated[str, AfterValidator(_valid_homepage)] | None = None
    changelog: PackagePath | None = None


class Compatibility(_Table):
    """``[compatibility]``: the host versions and platforms the package runs on."""

    host: RangeText | None = None
    platforms: Annotated[list[Platform], AfterValidator(_valid_platforms)] = ["any"]


class Requirements(_Table):
    """``[requirements]``: checked against what the instance reports (MB, non-negative)."""

    memory_mb: Requirement | None = None
    disk_mb: Requirement | None = None


class Permissions(_Table):
    """``[permissions]``: shown to reviewers and users, scored by the checks."""

    network: Annotated[list[str], Field(max_length=MAX_LIST_ITEMS), AfterValidator(_valid_network)] = []
    filesystem: Annotated[list[PackagePath], Field(max_length=MAX_LIST_ITEMS)] = []
    notifications: bool = False


class ConfigSection(_Table):
    """``[config]``: install-time settings, described by a JSON Schema object."""

    json_schema: Annotated[dict[str, Any], AfterValidator(_valid_config_schema)] = Field(alias="schema")


class Launch(_Table):
    """``[launch]``: what "open" returns, a path inside the installation or a URL template."""

    entry: PackagePath | None = None
    url: Annotated[str, AfterValidator(_valid_launch_url)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Launch:
        if (self.entry is None) == (self.url is None):
            raise ValueError("Give exactly one of launch.entry (a path in the package) and launch.url "
                             "(such as 'http://{host}:{port}/').")
        return self


class Manifest(_Table):
    """A validated ``mercato.toml``."""

    package: PackageInfo
    compatibility: Compatibility = Compatibility()
    requirements: Requirements = Requirements()
    permissions: Permissions = Permissions()
    dependencies: Annotated[dict[str, str], AfterValidator(_valid_dependencies)] = {}
    config: ConfigSection | None = None
    launch: Launch | None = None

    @property
    def name(self) -> str:
        return self.package.name

    @property
    def version(self) -> str:
        return self.package.version

    @property
    def kind(self) -> str:
        return self.package.kind

    @property
    def host_range(self) -> semver.VersionRange:
        return semver.parse_range(self.compatibility.host or "*")

    def to_document(self) -> dict[str, Any]:
        """The manifest as JSON-ready data (keys as in ``mercato.toml``), stored per version."""
        return self.model_dump(mode="json", by_alias=True)


def _cross_problems(manifest: Manifest) -> Iterator[dict[str, Any]]:
    if manifest.package.kind in ("app", "game") and manifest.launch is None:
        yield {"loc": ["launch"], "type": "missing",
               "msg": f"An {manifest.package.kind} needs a [launch] table with entry or url, so it can be opened."}
    if manifest.package.name in manifest.dependencies:
        yield {"loc": ["dependencies", manifest.package.name], "type": "value_error",
               "msg": "A package can't depend on itself."}


# --- parsing -----------------------------------------------------------------------------

def _where(loc: list[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _error_items(error: ValidationError) -> list[dict[str, Any]]:
    items = []
    for raw in error.errors(include_url=False, include_input=False, include_context=False):
        loc = [part for part in raw["loc"] if part != "[key]"]
        kind, message = raw["type"], raw["msg"]
        if kind == "extra_forbidden":
            key, table = loc[-1], loc[:-1]
            message = (f"Unknown table [{key}]" if not table else f"Unknown key {str(key)!r} in [{_where(table)}]")
            message += "; remove it or check its spelling (see docs/packages.md)."
        elif kind == "missing":
            message = f"{_where(loc)} is required."
        elif kind == "value_error":
            message = message.removeprefix("Value error, ")
        else:
            message = f"{_where(loc) or 'The manifest'}: {message}."
        items.append({"loc": loc, "msg": message, "type": kind})
    return items


def _refuse(items: list[dict[str, Any]]) -> ManifestInvalid:
    shown = "; ".join(f"{_where(item['loc']) + ': ' if item['loc'] else ''}{item['msg']}" for item in items[:3])
    more = f" (and {len(items) - 3} more)" if len(items) > 3 else ""
    return ManifestInvalid(f"{MANIFEST_NAME} is not valid: {shown}{more}", errors=items)


def decode_manifest(data: bytes) -> str:
    """The manifest's text: UTF-8 (a leading byte-order mark is dropped), at most 256 KiB."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestInvalid(f"{MANIFEST_NAME} is larger than {MAX_MANIFEST_BYTES // 1024} KiB; keep it short.",
                              errors=[{"loc": [], "msg": "The manifest is too large.", "type": "too_large"}])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ManifestInvalid(f"{MANIFEST_NAME} is not UTF-8 text (bad byte at offset {error.start}); save it "
                              "as UTF-8.",
                              errors=[{"loc": [], "msg": "Not UTF-8 text.", "type": "encoding"}]) from None
    return text.removeprefix("\ufeff")


def parse_manifest(data: bytes | str) -> Manifest:
    """Validate ``mercato.toml`` and return it; :class:`ManifestInvalid` names every problem."""
    text = decode_manifest(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ManifestInvalid(f"{MANIFEST_NAME} is not valid TOML: {error}. Fix the syntax at that line.",
                              errors=[{"loc": [], "msg": str(error), "type": "toml_syntax"}]) from None
    except ValueError as error:  # an integer longer than Python converts (sys.get_int_max_str_digits())
        raise ManifestInvalid(f"{MANIFEST_NAME} holds a value too large to read: {error}.",
                              errors=[{"loc": [], "msg": "A number is too long.", "type": "toml_value"}]) from None
    except RecursionError:
        raise ManifestInvalid(f"{MANIFEST_NAME} is nested too deeply.",
                              errors=[{"loc": [], "msg": "Nested too deeply.", "type": "toml_syntax"}]) from None
    try:
        manifest = Manifest.model_validate(document)
    except ValidationError as error:
        raise _refuse(_error_items(error)) from None
    except RecursionError:
        raise ManifestInvalid(f"{MANIFEST_NAME} is nested too deeply.",
                              errors=[{"loc": [], "msg": "Nested too deeply.", "type": "value_error"}]) from None
    if problems := list(_cross_problems(manifest)):
        raise _refuse(problems)
    return manifest


# --- rendering ---------------------------------------------------------------------------

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
