"""Reading ``mercato.toml``: :func:`decode_manifest` (bytes to text) and :func:`parse_manifest`
(text to a :class:`~mercato.packages.manifest.model.Manifest`), every problem reported as one
``{"loc", "msg", "type"}`` item of :class:`~mercato.packages.errors.ManifestInvalid`."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from mercato.packages.errors import ManifestInvalid
from mercato.packages.manifest.model import Manifest

MANIFEST_NAME = "mercato.toml"
MAX_MANIFEST_BYTES = 256 * 1024


def _cross_problems(manifest: Manifest) -> Iterator[dict[str, Any]]:
    if manifest.package.kind in ("app", "game") and manifest.launch is None:
        yield {"loc": ["launch"], "type": "missing",
               "msg": f"An {manifest.package.kind} needs a [launch] table with entry or url, so it can be opened."}
    if manifest.package.name in manifest.dependencies:
        yield {"loc": ["dependencies", manifest.package.name], "type": "value_error",
               "msg": "A package can't depend on itself."}


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
