"""The package archive as a download answers it (``GET /api/v1/listings/{id}/versions/{v}/download``
and the library page's download): entitlement, ETag and ``Range``, signature headers, and the
download count. HTTP helpers of the publishing module, shared by its route and the web pages."""

from __future__ import annotations

import base64

from fastapi import Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.principal import Principal
from mercato.kit.ranges import byte_range
from mercato.kit.storage import ArtifactMissing
from mercato.platform.runtime import Runtime
from mercato.releases import service


async def archive_response(session: AsyncSession, rt: Runtime, request: Request, *, actor: Principal, key: str,
                           version: str) -> Response:
    """The archive of ``key``'s ``version`` for an entitled ``actor``: 200, 206 (a range) or 304
    (If-None-Match); every answer carrying bytes of it counts as a download."""
    listing, found = await service.for_download(session, viewer=actor, key=key, version=version, count=False)
    if await rt.artifacts.size(found.sha256) is None:  # a clean 404 rather than a body that breaks off
        raise ArtifactMissing(f"The archive of {listing.slug} {found.version} is missing from storage.")
    etag = f'"{found.sha256}"'
    headers = {
        "ETag": etag, "Accept-Ranges": "bytes", "X-Checksum-SHA256": found.sha256,
        "Digest": "sha-256=" + base64.b64encode(bytes.fromhex(found.sha256)).decode(),
        "Content-Disposition": f'attachment; filename="{listing.slug}-{found.version}.'
                               f'{found.archive_format}"',  # zip, tar.gz or vsix (a VS Code extension)
        "Cache-Control": "private, max-age=0",
    }
    if found.signature:
        headers["X-Signature-Ed25519"] = found.signature
        headers["X-Signature-Key-Id"] = found.signature_key_id or ""
    offered = request.headers.get("if-none-match")
    if offered and (offered.strip() == "*" or etag in [t.strip().removeprefix("W/") for t in offered.split(",")]):
        return Response(status_code=304, headers=headers)
    if_range = request.headers.get("if-range")
    range_header = request.headers.get("range", "").replace(" ", "")
    selected = byte_range(range_header, found.size) if (not if_range or if_range.strip() == etag) else None
    # Counted from what is served, never from the request's headers: a stale If-None-Match, a
    # suffix range covering the file or a failed If-Range all hand out the archive.
    await service.count_download(session, listing=listing, version=found, user_id=actor.user_id)
    start, end = selected if selected else (0, found.size)
    headers["Content-Length"] = str(end - start)
    status = 200
    if selected is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{found.size}"
    media = "application/gzip" if found.archive_format == "tar.gz" else "application/zip"
    return StreamingResponse(rt.artifacts.open(found.sha256, start=start, end=end), status_code=status,
                             headers=headers, media_type=media)
