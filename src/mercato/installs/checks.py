"""The checks before a task is created: may the owner install the listing, is the version
approved, can the instance run it, and does the configuration fit the package's settings."""

from __future__ import annotations

import uuid
from typing import Any

from jsonschema import Draft202012Validator
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.catalog import service as catalog
from mercato.catalog.errors import ListingNotFound
from mercato.installs.errors import InstallListingNotFound, InvalidConfig, RequirementsNotMet, VersionNotAvailable
from mercato.kit.semver import parse_range
from mercato.library import service as library
from mercato.models import Instance, Listing, ListingVersion
from mercato.releases import service as versions
from mercato.releases.errors import NotEntitled


def requirement_problems(manifest: dict[str, Any], instance: Instance) -> list[dict[str, Any]]:
    """What the instance lacks for this package, from its last report (empty: it fits)."""
    problems: list[dict[str, Any]] = []
    compatibility = manifest.get("compatibility") or {}
    platforms = compatibility.get("platforms") or ["any"]
    if "any" not in platforms:
        if instance.platform is None:
            problems.append(_problem("platform", "missing", f"The instance has not reported its platform; the "
                                     f"package runs on {', '.join(platforms)}."))
        elif instance.platform not in platforms:
            problems.append(_problem("platform", "unsupported", f"The package runs on {', '.join(platforms)}, "
                                     f"not on {instance.platform}."))
    host = compatibility.get("host")
    if host and not parse_range(host).is_any:
        if instance.host_version is None:
            problems.append(_problem("host_version", "missing", f"The instance has not reported its host version; "
                                     f"the package needs {host}."))
        elif instance.host_version not in parse_range(host):
            problems.append(_problem("host_version", "unsupported", f"The package needs host {host}; the instance "
                                     f"has {instance.host_version}."))
    requirements = manifest.get("requirements") or {}
    for key, what in (("memory_mb", "memory"), ("disk_mb", "disk space")):
        needed = requirements.get(key)
        if not needed:
            continue
        available = (instance.resources or {}).get(key)
        if available is None:
            problems.append(_problem(key, "missing", f"The instance has not reported its free {what}; the package "
                                     f"needs {needed} MB."))
        elif available < needed:
            problems.append(_problem(key, "insufficient", f"The package needs {needed} MB of {what}; the instance "
                                     f"has {available} MB free."))
    return problems


def _problem(field: str, kind: str, message: str) -> dict[str, Any]:
    return {"loc": ["instance", field], "msg": message, "type": f"requirement_{kind}"}


def check_requirements(version: ListingVersion, instance: Instance) -> None:
    """RequirementsNotMet naming every problem, unless the instance can run the version."""
    problems = requirement_problems(version.manifest, instance)
    if problems:
        raise RequirementsNotMet(f"{instance.name} cannot run version {version.version}: "
                                 + " ".join(p["msg"] for p in problems), errors=problems)


def checked_config(manifest: dict[str, Any], config: dict[str, Any] | None) -> dict[str, Any]:
    """The configuration with the schema's top-level defaults filled in; InvalidConfig names
    every missing or invalid setting."""
    schema = (manifest.get("config") or {}).get("schema")
    given = dict(config or {})
    if not schema:
        if given:
            raise InvalidConfig("This package takes no settings.",
                                errors=[{"loc": ["body", "config", key], "msg": "Unknown setting.", "type": "extra"}
                                        for key in sorted(given)])
        return given
    for key, spec in (schema.get("properties") or {}).items():
        if isinstance(spec, dict) and "default" in spec and key not in given:
            given[key] = spec["default"]
    errors = []
    for error in sorted(Draft202012Validator(schema).iter_errors(given), key=lambda e: list(e.absolute_path)):
        path = [str(p) for p in error.absolute_path]
        if error.validator == "required":
            missing = [name for name in error.validator_value if name not in (error.instance or {})]
            errors.extend({"loc": ["body", "config", *path, name], "msg": f"The setting {name!r} is required.",
                           "type": "missing"} for name in missing)
        else:
            errors.append({"loc": ["body", "config", *path], "msg": error.message, "type": str(error.validator)})
    if errors:
        names = ", ".join(".".join(str(p) for p in e["loc"][2:]) or "config" for e in errors)
        raise InvalidConfig(f"The configuration does not fit the package's settings: {names}.", errors=errors)
    return given


async def listing_for(session: AsyncSession, actor_id: uuid.UUID, listing_id: uuid.UUID) -> Listing:
    """The listing, if the owner may install it: an entitlement, or a free published
    listing (got into the library now, as a free download does)."""
    try:
        listing = await catalog.get_by_id(session, listing_id)
    except ListingNotFound:
        raise InstallListingNotFound(f"There is no listing {listing_id}.") from None
    if not await library.entitle_for_download(session, user_id=actor_id, listing=listing, count=False):
        if listing.status != "published" and listing.sort_price == 0:
            raise InstallListingNotFound(f"There is no listing {listing_id}.")
        raise NotEntitled(f"Buy {listing.slug} first: only its owners may install it.")
    return listing


async def version_for(session: AsyncSession, listing: Listing, version: str | None) -> ListingVersion:
    """The approved version asked for, or the latest approved one."""
    found = (await versions.find_version(session, listing.id, version, statuses=("approved",)) if version
             else await versions.latest_approved(session, listing.id))
    if found is None:
        raise VersionNotAvailable(f"{listing.slug} has no approved version {version!r}." if version
                                  else f"{listing.slug} has no approved version yet.",
                                  errors=[{"loc": ["body", "version"], "msg": "Not an approved version.",
                                           "type": "version_not_available"}])
    return found
