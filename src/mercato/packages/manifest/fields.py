"""The values ``mercato.toml`` holds, one validator each, and the annotated types the
manifest's tables are built from (each raises ValueError saying what is wrong and how to
write it instead).
"""

from __future__ import annotations

import ipaddress
import math
import re
import unicodedata
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import AfterValidator, Field

from mercato.kit import semver
from mercato.packages.manifest.paths import INVISIBLE_CATEGORIES, path_problem

MAX_URL_LENGTH = 2000
MAX_SCHEMA_DEPTH = 32
MAX_LIST_ITEMS = 100
MAX_REQUIREMENT = 2**31 - 1

_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_LICENSE = re.compile(r"[A-Za-z0-9.+\-:() ]+")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


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
    if any(unicodedata.category(c) in INVISIBLE_CATEGORIES for c in value):
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
    if any(c.isspace() or unicodedata.category(c) in INVISIBLE_CATEGORIES for c in value):
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


# The types the tables of model.py are built from: each value with its validator.
PackageName = Annotated[str, AfterValidator(validate_name)]
PackagePath = Annotated[str, AfterValidator(_valid_package_path)]
VersionText = Annotated[str, AfterValidator(_valid_version)]
RangeText = Annotated[str, AfterValidator(_valid_range)]
Platform = Literal["any", "linux-x64", "linux-arm64", "macos-x64", "macos-arm64", "windows-x64", "windows-arm64"]
Requirement = Annotated[int, Field(ge=0, le=MAX_REQUIREMENT)]
Summary = Annotated[str, AfterValidator(_valid_summary)]
LicenceText = Annotated[str, AfterValidator(_valid_license)]
Homepage = Annotated[str, AfterValidator(_valid_homepage)]
PlatformList = Annotated[list[Platform], AfterValidator(_valid_platforms)]
NetworkPermissions = Annotated[list[str], Field(max_length=MAX_LIST_ITEMS), AfterValidator(_valid_network)]
FilesystemPermissions = Annotated[list[PackagePath], Field(max_length=MAX_LIST_ITEMS)]
ConfigSchema = Annotated[dict[str, Any], AfterValidator(_valid_config_schema)]
LaunchUrl = Annotated[str, AfterValidator(_valid_launch_url)]
Dependencies = Annotated[dict[str, str], AfterValidator(_valid_dependencies)]
