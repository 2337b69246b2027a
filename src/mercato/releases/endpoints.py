"""Versions: upload, list, yank, download; and the store's public keys. Submitting a version
and appealing its rejection are the review queue's (moderation/endpoints.py)."""

from __future__ import annotations

import base64
import re
import uuid
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Request, Response
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.formparsers import MultiPartException

from mercato.access.dependencies import OptionalPrincipal, public, requires
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.catalog import service as catalog
from mercato.catalog.errors import ListingNotFound, ListingTransitionRefused
from mercato.catalog.schemas import ListingKey
from mercato.kit.errors import Forbidden, ValidationFailed
from mercato.kit.keys import ARTIFACT_PREFIX
from mercato.kit.pagination import CursorParam, InvalidCursor, Limit, keyset_page
from mercato.kit.schemas import Page
from mercato.kit.storage import ArtifactMissing
from mercato.packages.errors import PackageTooLarge
from mercato.platform.routing import ReadSession, RuntimeDep, TransactionalRoute, WriteSession
from mercato.releases import service
from mercato.releases.downloads import archive_response
from mercato.releases.errors import (
    ManifestMismatch,
    NotEntitled,
    RangeNotSatisfiable,
    VersionExists,
    VersionNotFound,
    VersionTransitionRefused,
)
from mercato.releases.ingest import ingest, spool
from mercato.releases.schemas import KeysRead, PublicKeyRead, VersionRead, VersionText, YankBody

router = APIRouter(route_class=TransactionalRoute, tags=["versions"])

UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    **ListingNotFound.responses(VersionExists, ManifestMismatch, Forbidden, ListingTransitionRefused, PackageTooLarge),
    422: {"description": "The package is not valid (codes: manifest_invalid, manifest_missing, archive_unsafe_path, "
                         "archive_link, archive_duplicate_member, archive_bomb, archive_too_many_members, "
                         "archive_unsupported, archive_corrupt, archive_header_mismatch, checksum_mismatch, "
                         "manifest_mismatch)"},
}


def _cursor(cursor: str | None) -> tuple[str, uuid.UUID] | None:
    if not cursor:
        return None
    try:
        ordering, _, version_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition("|")
        return ordering, uuid.UUID(version_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor("Use the next_cursor value from the previous page as it was given.", errors=[
            {"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "invalid_cursor"}]) from exc


@router.get("/listings/{listing_id}/versions", response_model=Page[VersionRead], dependencies=[public()],
            responses=ListingNotFound.responses())
async def list_versions(listing_id: ListingKey, session: ReadSession, viewer: OptionalPrincipal,
                        cursor: CursorParam = None, limit: Limit = 20) -> Page[VersionRead]:
    """Highest version first. The public sees approved and yanked versions; the publisher's
    members, reviewers and admins see every state."""
    listing = await catalog.get_visible(session, viewer, listing_id)
    rows = await service.list_versions(session, viewer, listing, after=_cursor(cursor), limit=limit + 1)
    page, next_cursor = keyset_page(rows, limit, lambda version: base64.urlsafe_b64encode(
        f"{version.ordering}|{version.id}".encode()).decode().rstrip("="))
    return Page[VersionRead](items=[VersionRead.model_validate(v) for v in page], next_cursor=next_cursor)


@router.get("/listings/{listing_id}/versions/{version}", response_model=VersionRead, dependencies=[public()],
            responses=ListingNotFound.responses(VersionNotFound))
async def get_version(listing_id: ListingKey, version: VersionText, session: ReadSession,
                      viewer: OptionalPrincipal) -> VersionRead:
    listing = await catalog.get_visible(session, viewer, listing_id)
    return VersionRead.model_validate(await service.get_version(session, viewer, listing, version))


SHA256_TEXT = re.compile(r"^[0-9a-fA-F]{64}$")
# The body is described here rather than declared as parameters: FastAPI reads a declared form body
# before the route's dependencies run, so a 512 MiB upload would arrive before the caller is known.
UPLOAD_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "The package: .tar.gz or .zip"},
        "sha256": {"type": "string", "pattern": SHA256_TEXT.pattern,
                   "description": "The SHA-256 (hex) you computed; the upload is refused if it differs."}}}}}}}


def _form_error(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"The form field {field!r} {message}.",
                            errors=[{"loc": ["body", field], "msg": message, "type": "value_error"}])


@router.post("/listings/{listing_id}/versions", status_code=201, response_model=VersionRead, responses=UPLOAD_ERRORS,
             openapi_extra=UPLOAD_BODY)
async def upload_version(listing_id: ListingKey, request: Request, rt: RuntimeDep, session: WriteSession,
                         actor: Annotated[Principal, requires(Permission.version_upload)]) -> VersionRead:
    """Upload a package archive (multipart field `file`, optional `sha256`). It is inspected
    without being unpacked (paths, links, bombs, the manifest), checked automatically, stored by
    its SHA-256 and recorded as an `uploaded` version. Submit it for review next. The caller, the
    permission and the listing are checked before the body is read (401/403/404 first)."""
    async with rt.db.read_session() as check_session:  # 403/404 before any work on the body
        await service.listing_for_upload(check_session, actor=actor, key=listing_id)
    try:
        form = await request.form(max_files=1, max_fields=1)
    except MultiPartException as error:
        raise _form_error("file", f"could not be read from the multipart body ({error.message})") from None
    try:
        file, declared = form.get("file"), form.get("sha256")
        if not isinstance(file, StarletteUpload):
            raise _form_error("file", "is required and must be a file part")
        if declared is not None and (not isinstance(declared, str) or not SHA256_TEXT.match(declared)):
            raise _form_error("sha256", "must be 64 hexadecimal characters")
        spooled = await anyio.to_thread.run_sync(spool, file, rt.settings.data_dir / "tmp",
                                                 rt.settings.package_max_bytes)
    finally:
        await form.close()
    try:
        archive, report = await ingest(rt, spooled, declared_sha256=declared.lower() if declared else None)
    finally:
        spooled.unlink(missing_ok=True)
    version = await service.record_upload(session, actor=actor, key=listing_id, archive=archive, report=report)
    return VersionRead.model_validate(version)


@router.post("/listings/{listing_id}/versions/{version}/yank", response_model=VersionRead,
             responses=ListingNotFound.responses(VersionNotFound, VersionTransitionRefused, Forbidden))
async def yank_version(listing_id: ListingKey, version: VersionText, body: YankBody, session: WriteSession,
                       actor: Annotated[Principal, requires(Permission.version_yank)]) -> VersionRead:
    """Hide an approved version from new installs (owners keep it); "latest" moves down."""
    return VersionRead.model_validate(
        await service.yank(session, actor=actor, key=listing_id, version=version, reason=body.reason))


# --- downloads ----------------------------------------------------------------------------------

# What a download answers: a .tar.gz package, or a .zip one (a VS Code extension's VSIX too).
_ARCHIVE_TYPES = {"application/gzip": {"schema": {"type": "string", "format": "binary"}},
                  "application/zip": {"schema": {"type": "string", "format": "binary"}}}


@router.get("/listings/{listing_id}/versions/{version}/download",
            responses={**ListingNotFound.responses(VersionNotFound, NotEntitled, RangeNotSatisfiable, ArtifactMissing),
                       200: {"content": _ARCHIVE_TYPES, "description": "The package archive"},
                       206: {"content": _ARCHIVE_TYPES, "description": "Part of the archive (Range)"},
                       304: {"description": "Not modified (If-None-Match)"}})
async def download(listing_id: ListingKey, version: VersionText, request: Request, session: WriteSession,
                   rt: RuntimeDep, actor: Annotated[Principal, requires(Permission.version_download)]) -> Response:
    """The package archive, for entitled callers (free listings: any signed-in user, who gets
    it into their library; paid: its owners). Supports `Range` and `If-None-Match`; headers
    carry the SHA-256 and the store's Ed25519 signature of it (verify with `GET /api/v1/keys`).
    Every answer that carries bytes of the archive counts as a download (the refund policy reads
    the count): a revalidation answered 304 does not; a range, even a resumed one, does."""
    return await archive_response(session, rt, request, actor=actor, key=listing_id, version=version)


@router.get("/keys", response_model=KeysRead, dependencies=[public()])
async def public_keys(rt: RuntimeDep) -> KeysRead:
    """The store's Ed25519 public keys. A download's `X-Signature-Ed25519` signs
    `artifact_message` + the file's hex SHA-256 with the key named by `X-Signature-Key-Id`."""
    return KeysRead(keys=[PublicKeyRead(id=k.id, algorithm="ed25519", public_key=k.public_key)
                          for k in rt.keys.public_keys()],
                    artifact_message=ARTIFACT_PREFIX.decode())


