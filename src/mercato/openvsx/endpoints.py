"""HTTP: the Open VSX registry API and VS Code's gallery API under ``{store}/openvsx``, the same
again under ``{store}/openvsx/t/{registry_token}`` (a user's personal registry URL), and the
account routes that manage personal registry tokens (``/api/v1/me/registry-tokens``).

Answers are shaped as the clients read them (``schemas.py``); errors are problem JSON that also
carries ``error``, where ``ovsx`` and Theia look for the message.
"""

from __future__ import annotations

import base64
import copy
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal, get_args

import anyio
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from mercato.access.dependencies import public, requires, requires_credential
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.kit.errors import MercatoError, PayloadTooLarge, ValidationFailed, found_or_raise
from mercato.kit.http import _validation_errors
from mercato.kit.pagination import CursorParam, Limit, page_of
from mercato.kit.schemas import Page
from mercato.kit.storage import ArtifactMissing
from mercato.openvsx import extensions, gallery, registry_api, service
from mercato.openvsx.errors import (
    AlreadyPublished,
    ExtensionNotFound,
    FileNotFound,
    NamespaceNotFound,
    PurchaseRequired,
    RegistryTokenInvalid,
    RegistryTokenNotFound,
)
from mercato.openvsx.schemas import (
    ExtensionJson,
    GalleryQuery,
    GalleryQueryResult,
    NamespaceCreate,
    NamespaceJson,
    QueryResultJson,
    RegistryTokenCreate,
    RegistryTokenCreated,
    RegistryTokenRead,
    RegistryVersionJson,
    ResultJson,
    SearchResultJson,
    SizeLimitJson,
    VersionReferencesJson,
)
from mercato.packages.archive import PackageLimits
from mercato.packages.checks import run_checks
from mercato.packages.vsix import TARGET_PLATFORMS, inspect_vsix
from mercato.platform.routing import (
    ReadSession,
    RuntimeDep,
    TransactionalRoute,
    WriteSession,
)

PREFIX, PERSONAL_PREFIX = service.PREFIX, service.PERSONAL_PREFIX
CHUNK = 1024 * 1024
MAX_PAGE = 100


class RegistryRoute(TransactionalRoute):
    """A transactional route whose errors also carry ``error`` (Open VSX's ResultJson field)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except MercatoError as error:
                error.extra.setdefault("error", error.detail)
                raise
            except RequestValidationError as invalid:  # the same 422 as everywhere, with ``error`` too
                fields = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}"
                                   for e in invalid.errors()[:5])
                raise ValidationFailed(f"Some parameters are missing or invalid ({fields}).",
                                       errors=_validation_errors(invalid), error=f"Invalid request: {fields}.") \
                    from None

        return run


# Every registry route answers 401 for a personal registry URL whose token is not (or no longer) one.
router = APIRouter(route_class=RegistryRoute, tags=["open vsx"], responses=RegistryTokenInvalid.responses())
account_router = APIRouter(route_class=TransactionalRoute, tags=["accounts"])


def _token_of(request: Request) -> str | None:
    """ovsx ≥ 1.4: Authorization: Bearer (X-OpenVSX-Token when Basic auth goes to a proxy);
    ovsx 0.10: ?token=."""
    authorization = request.headers.get("authorization", "")
    if authorization[:7].lower() == "bearer " and authorization[7:].strip():
        return authorization[7:].strip()
    return request.headers.get("x-openvsx-token") or request.query_params.get("token") or None


Publisher = Annotated[Principal, requires_credential(Permission.version_upload, _token_of)]
NamespaceCreator = Annotated[Principal, requires_credential(Permission.listing_create, _token_of)]


async def registry_context(request: Request, rt: RuntimeDep) -> extensions.Registry:
    """Where answers' URLs point, and whose personal registry URL this is (if it is one)."""
    store = str(request.base_url).rstrip("/")
    secret = request.path_params.get("registry_token")
    if secret is None:
        return extensions.Registry(base=store + PREFIX, store=store)
    async with rt.db.read_session() as session:
        user_id = await service.user_of_token(session, secret)
    return extensions.Registry(base=f"{store}/openvsx/t/{secret}", store=store, user_id=user_id)


Registry = Annotated[extensions.Registry, Depends(registry_context)]
Name = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9-]*$")]
Version = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[0-9A-Za-z.+-]+$")]
READ_ERRORS = ExtensionNotFound.responses(RegistryTokenInvalid)
JSON_OPTIONS: dict[str, Any] = {"response_model_exclude_none": True, "dependencies": [public()]}


TargetName = Literal["universal", "web", "win32-x64", "win32-ia32", "win32-arm64", "linux-x64", "linux-arm64",
                     "linux-armhf", "alpine-x64", "alpine-arm64", "darwin-x64", "darwin-arm64"]
Target = Annotated[TargetName | None, Query(description="A target platform, e.g. linux-x64.")]
assert set(get_args(TargetName)) == set(TARGET_PLATFORMS)
TargetPath = Annotated[TargetName, Path(description="A target platform, e.g. linux-x64.")]
Size = Annotated[int, Query(ge=0, le=10_000, description="How many to answer (at most 100 are).")]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


# --- registry information ---------------------------------------------------------------------------

@router.get("/api/version", response_model=RegistryVersionJson, **JSON_OPTIONS)
async def registry_version(rt: RuntimeDep, _: Registry) -> RegistryVersionJson:
    """The Open VSX API level answered here, and the largest VSIX accepted."""
    return RegistryVersionJson(version=service.OPENVSX_API_VERSION, max_extension_size=rt.settings.package_max_bytes)


@router.get("/api/-/size-limit", response_model=SizeLimitJson, **JSON_OPTIONS)
async def size_limit(rt: RuntimeDep, _: Registry, namespace: str | None = None,
                     extension: str | None = None) -> SizeLimitJson:
    """The largest VSIX accepted (the same for every namespace on this store)."""
    return SizeLimitJson(max_size=rt.settings.package_max_bytes)


# --- publishing -----------------------------------------------------------------------------------

@router.get("/api/{namespace}/verify-pat", response_model=ResultJson, response_model_exclude_none=True,
            responses=NamespaceNotFound.responses())
async def verify_pat(namespace: Name, session: ReadSession, actor: Publisher, _: Registry) -> ResultJson:
    """Whether the token may publish to the namespace (its publisher)."""
    publisher = await service.check_may_publish(session, actor=actor, namespace=namespace)
    return ResultJson(success=f"Valid token for namespace {publisher.slug}")


@router.post("/api/-/namespace/create", status_code=201, response_model=ResultJson,
             response_model_exclude_none=True, responses=NamespaceNotFound.responses())
async def create_namespace(body: NamespaceCreate, session: WriteSession, actor: NamespaceCreator,
                           _: Registry) -> ResultJson:
    """A namespace is a publisher: yours already, or a new one for those who may create publishers."""
    return ResultJson(success=await service.create_namespace(session, actor=actor, name=body.name))


async def _receive(request: Request, directory: FilePath, max_bytes: int) -> FilePath:
    """Stream the raw body (ovsx sends it chunked, without Content-Length) to a file of ours."""
    await anyio.to_thread.run_sync(lambda: directory.mkdir(parents=True, exist_ok=True))
    target = directory / f"vsix-{uuid.uuid4().hex}"
    written = 0
    try:
        async with await anyio.open_file(target, "wb") as out:
            async for block in request.stream():
                written += len(block)
                if written > max_bytes:
                    raise PayloadTooLarge(f"A VSIX may be at most {max_bytes} bytes.")
                await out.write(block)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


@router.post("/api/-/publish", status_code=201, response_model=ExtensionJson, response_model_exclude_none=True,
             responses={**AlreadyPublished.responses(NamespaceNotFound),
                        422: {"description": "The VSIX is not valid (archive or manifest codes)"}},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
async def publish(request: Request, rt: RuntimeDep, session: WriteSession, actor: Publisher,
                  registry: Registry) -> ExtensionJson:
    """Publish a VSIX (the raw file as the body). It is inspected like any package, recorded as
    a new version of its listing (a draft listing is created the first time) and submitted to
    review; clients see it once a reviewer approves it."""
    spooled = await _receive(request, rt.settings.data_dir / "tmp", rt.settings.package_max_bytes)
    try:
        inspected = await anyio.to_thread.run_sync(
            lambda: inspect_vsix(spooled, limits=PackageLimits.from_settings(rt.settings)))
        async with rt.db.read_session() as check_session:  # 403/404 before anything is stored
            await service.check_may_publish(check_session, actor=actor, namespace=inspected.manifest.publisher)
        report = run_checks(inspected)  # type: ignore[arg-type]
        await rt.artifacts.put_file(spooled, digest=inspected.sha256)
    finally:
        spooled.unlink(missing_ok=True)
    stored: dict[str, dict[str, Any]] = {}
    for kind, (file_name, data) in inspected.files.items():
        blob = await rt.artifacts.put(_chunks(data), max_bytes=len(data) + 1)
        stored[kind] = {"name": file_name, "sha256": blob.digest, "size": blob.size}
    extension, version = await service.publish(session, actor=actor, inspected=inspected, report=report,
                                               stored_files=stored, currency=rt.settings.currency)
    answer = registry_api.extension_json(registry, extension, version, [version], downloadable=True, all_versions=False)
    answer.warning = (f"{extension.publisher.slug}.{extension.name} {version.version} awaits review by the store's "
                      "reviewers; clients see it once it is approved.")
    return answer


async def _chunks(data: bytes) -> Any:
    yield data


# --- reading ------------------------------------------------------------------------------------------

@router.get("/api/-/search", response_model=SearchResultJson, **JSON_OPTIONS)
async def search(session: ReadSession, registry: Registry, query: str | None = Query(None, max_length=200),
                 category: str | None = Query(None, max_length=100), targetPlatform: Target = None,
                 size: Size = 18, offset: Offset = 0, sortOrder: Literal["asc", "desc"] = "desc",
                 sortBy: Literal["relevance", "timestamp", "rating", "averageRating", "downloadCount"] = "relevance",
                 includeAllVersions: bool = False) -> SearchResultJson:
    """Text search over published extensions (name, display name, description)."""
    entries, total = await registry_api.search(
        session, registry, query=query or None, category=category or None, target=targetPlatform,
        size=min(size, MAX_PAGE), offset=offset, sort_by=sortBy, descending=sortOrder == "desc",
        include_all_versions=includeAllVersions)
    return SearchResultJson(offset=offset, total_size=total, extensions=entries)


@router.get("/api/v2/-/query", response_model=QueryResultJson, **JSON_OPTIONS)
async def query_v2(session: ReadSession, registry: Registry, namespaceName: str | None = None,
                   extensionName: str | None = None, extensionVersion: str | None = None,
                   extensionId: str | None = None, extensionUuid: str | None = None,
                   namespaceUuid: str | None = None, includeAllVersions: Literal["true", "false", "links"] = "links",
                   targetPlatform: Target = None, size: Size = 100, offset: Offset = 0) -> QueryResultJson:
    """Metadata of the extensions (and versions) matching every given parameter."""
    entries, total = await registry_api.query(
        session, registry, namespace=namespaceName, name=extensionName, version=extensionVersion,
        extension_id=extensionId, extension_uuid=extensionUuid, namespace_uuid=namespaceUuid,
        include_all_versions=includeAllVersions, target=targetPlatform, size=min(size, MAX_PAGE),
        offset=offset)
    return QueryResultJson(offset=offset, total_size=total, extensions=entries)


@router.get("/api/{namespace}", response_model=NamespaceJson, responses=NamespaceNotFound.responses(),
            **JSON_OPTIONS)
async def namespace(namespace: Name, session: ReadSession, registry: Registry) -> NamespaceJson:
    """A namespace (publisher) and its published extensions."""
    return await registry_api.namespace_json(session, registry, namespace)


async def _references(session: Any, registry: extensions.Registry, namespace: str, extension: str,
                      target: str | None, size: int, offset: int) -> VersionReferencesJson:
    found = await extensions.find(session, namespace, extension)
    versions = await extensions.versions_of(session, found, target=target)
    return VersionReferencesJson(offset=offset, total_size=len(versions), versions=[
        registry_api.version_reference(registry, found, v) for v in versions[offset:offset + min(size, MAX_PAGE)]])


@router.get("/api/{namespace}/{extension}/version-references", response_model=VersionReferencesJson,
            responses=READ_ERRORS, **JSON_OPTIONS)
async def version_references(namespace: Name, extension: Name, session: ReadSession, registry: Registry,
                             size: Size = 18, offset: Offset = 0) -> VersionReferencesJson:
    """The extension's versions, newest first, each with its target platform and links."""
    return await _references(session, registry, namespace, extension, None, size, offset)


@router.get("/api/{namespace}/{extension}/{target}/version-references", response_model=VersionReferencesJson,
            responses=READ_ERRORS, **JSON_OPTIONS)
async def target_version_references(namespace: Name, extension: Name, target: TargetPath, session: ReadSession,
                                    registry: Registry, size: Size = 18, offset: Offset = 0) -> VersionReferencesJson:
    """The versions of one target platform."""
    return await _references(session, registry, namespace, extension, target, size, offset)


async def _metadata(session: Any, registry: extensions.Registry, namespace: str, extension: str, target: str | None,
                    version: str | None) -> ExtensionJson:
    found = await extensions.find(session, namespace, extension)
    versions = await extensions.versions_of(session, found, target=target)
    chosen = extensions.pick_version(versions, version, found)
    downloadable = await extensions.may_download(session, registry, found.listing)
    return registry_api.extension_json(registry, found, chosen, versions, downloadable=downloadable)


@router.get("/api/{namespace}/{extension}", response_model=ExtensionJson, responses=READ_ERRORS, **JSON_OPTIONS)
async def extension(namespace: Name, extension: Name, session: ReadSession, registry: Registry) -> ExtensionJson:
    """The latest version of an extension."""
    return await _metadata(session, registry, namespace, extension, None, None)


@router.get("/api/{namespace}/{extension}/{target_or_version}", response_model=ExtensionJson,
            responses=READ_ERRORS, **JSON_OPTIONS)
async def extension_version(namespace: Name, extension: Name, target_or_version: Version, session: ReadSession,
                            registry: Registry) -> ExtensionJson:
    """A version (or ``latest``, ``pre-release``), or the latest of a target platform."""
    if target_or_version in TARGET_PLATFORMS:
        return await _metadata(session, registry, namespace, extension, target_or_version, None)
    return await _metadata(session, registry, namespace, extension, None, target_or_version)


@router.get("/api/{namespace}/{extension}/{target}/{version}", response_model=ExtensionJson,
            responses=READ_ERRORS, **JSON_OPTIONS)
async def target_extension_version(namespace: Name, extension: Name, target: TargetPath, version: Version,
                                   session: ReadSession, registry: Registry) -> ExtensionJson:
    """A version of one target platform."""
    return await _metadata(session, registry, namespace, extension, target, version)


# --- files ---------------------------------------------------------------------------------------------

async def _serve(request: Request, session: Any, rt: Any, registry: extensions.Registry, namespace: str,
                 extension: str, target: str | None, version: str, file_name: str | None, kind: str | None) -> Response:
    """A file of a version by its name (``kind`` None) or kind; the VSIX itself only to whoever
    may download it (free: anyone; paid: owners through their personal URL)."""
    found = await extensions.find(session, namespace, extension)
    chosen = extensions.pick_version(await extensions.versions_of(session, found, target=target), version, found)
    vsix_name = registry_api.download_name(found, chosen)
    if kind == "download" or file_name == vsix_name:
        await service.vsix_for_download(session, registry, found, chosen)
        if await rt.artifacts.size(chosen.sha256) is None:
            raise ArtifactMissing(f"The VSIX of {vsix_name} is missing from storage.")
        headers = {"Content-Disposition": f'attachment; filename="{vsix_name}"', "Content-Length": str(chosen.size),
                   "X-Checksum-SHA256": chosen.sha256, "ETag": f'"{chosen.sha256}"',
                   "Digest": "sha-256=" + base64.b64encode(bytes.fromhex(chosen.sha256)).decode(),
                   "Cache-Control": "private, max-age=0" if found.listing.sort_price else "public, max-age=600"}
        if chosen.signature:
            headers["X-Signature-Ed25519"] = chosen.signature
            headers["X-Signature-Key-Id"] = chosen.signature_key_id or ""
        return StreamingResponse(rt.artifacts.open(chosen.sha256), headers=headers,
                                 media_type="application/octet-stream")
    if file_name == vsix_name[:-len(".vsix")] + ".sha256":
        return Response(chosen.sha256, media_type="text/plain")
    wanted = next(((k, s) for k, s in (chosen.manifest.get("files") or {}).items() if k == kind), None) \
        if kind else service.stored_file(chosen, file_name or "")
    stored = found_or_raise(wanted, FileNotFound,
                            f"{namespace}.{extension} {chosen.version} has no file {file_name or kind!r}.")
    data = b"".join([chunk async for chunk in rt.artifacts.open(stored[1]["sha256"])])
    media = {"manifest": "application/json", "readme": "text/markdown", "changelog": "text/markdown",
             "license": "text/plain", "vsixmanifest": "application/xml"}.get(stored[0], "application/octet-stream")
    if stored[0] == "icon":
        media = "image/svg+xml" if stored[1]["name"].lower().endswith(".svg") else "image/png"
    return Response(data, media_type=media, headers={"Cache-Control": "public, max-age=600",
                                                     "X-Content-Type-Options": "nosniff"})


FILE_RESPONSES = {**ExtensionNotFound.responses(FileNotFound, PurchaseRequired, RegistryTokenInvalid),
                  200: {"description": "The file", "content": {kind: {} for kind in (
                      "application/octet-stream", "text/plain", "text/markdown", "application/json", "application/xml",
                      "image/png", "image/svg+xml")}}}


@router.get("/api/{namespace}/{extension}/{version}/file/{file_name}", dependencies=[public()],
            responses=FILE_RESPONSES)
async def file(namespace: Name, extension: Name, version: Version, file_name: str, request: Request,
               session: WriteSession, rt: RuntimeDep, registry: Registry) -> Response:
    """A file of a version: the VSIX (`{namespace}.{extension}-{version}.vsix`), its `.sha256`,
    package.json, the readme, changelog, licence, icon or extension.vsixmanifest."""
    return await _serve(request, session, rt, registry, namespace, extension, None, version, file_name, None)


@router.get("/api/{namespace}/{extension}/{target}/{version}/file/{file_name}", dependencies=[public()],
            responses=FILE_RESPONSES)
async def target_file(namespace: Name, extension: Name, target: TargetPath, version: Version, file_name: str,
                      request: Request, session: WriteSession, rt: RuntimeDep, registry: Registry) -> Response:
    """A file of a version of one target platform."""
    return await _serve(request, session, rt, registry, namespace, extension, target, version, file_name, None)


# --- the VS Code gallery ----------------------------------------------------------------------------------

@router.post("/vscode/gallery/extensionquery", response_model=GalleryQueryResult, **JSON_OPTIONS)
async def gallery_query(body: GalleryQuery, session: ReadSession, registry: Registry) -> GalleryQueryResult:
    """VS Code's extension query: filters by name, id, search text, tag, category and target
    platform; flags choose versions, files, properties, asset URIs and statistics."""
    return await gallery.gallery_query(session, registry, body)


@router.get("/vscode/asset/{namespace}/{extension}/{version}/{asset_type}", dependencies=[public()],
            responses=FILE_RESPONSES)
async def gallery_asset(namespace: Name, extension: Name, version: Version, asset_type: str, request: Request,
                        session: WriteSession, rt: RuntimeDep, registry: Registry,
                        targetPlatform: str | None = None) -> Response:
    """An asset of a version by VS Code's asset type (VSIXPackage, Manifest, Content.Details, …)."""
    kind = found_or_raise(gallery.ASSET_KINDS.get(asset_type), FileNotFound, f"Unknown asset type {asset_type!r}.")
    target = targetPlatform if targetPlatform not in (None, "universal") else None
    return await _serve(request, session, rt, registry, namespace, extension, target, version, None, kind)


@router.get("/vscode/gallery/publishers/{namespace}/vsextensions/{extension}/{version}/vspackage",
            dependencies=[public()], responses=FILE_RESPONSES)
async def gallery_vspackage(namespace: Name, extension: Name, version: Version, request: Request,
                            session: WriteSession, rt: RuntimeDep, registry: Registry,
                            targetPlatform: str | None = None) -> Response:
    """The VSIX (the marketplace's legacy download route)."""
    target = targetPlatform if targetPlatform not in (None, "universal") else None
    return await _serve(request, session, rt, registry, namespace, extension, target, version, None, "download")


@router.get("/vscode/item", dependencies=[public()], responses={
    **ExtensionNotFound.responses(RegistryTokenInvalid), 302: {"description": "To the extension's store page"}})
async def gallery_item(session: ReadSession, registry: Registry,
                       itemName: str = Query(max_length=130)) -> Response:
    """The store page of an extension (``itemName=namespace.extension``)."""
    namespace_name, _, extension_name = itemName.partition(".")
    found = await extensions.find(session, namespace_name, extension_name)
    return RedirectResponse(f"{registry.store}/listings/{found.listing.slug}", status_code=302)


# --- personal registry tokens (the account page's API) ----------------------------------------------------

def _token_read(token: Any) -> RegistryTokenRead:
    return RegistryTokenRead(id=str(token.id), name=token.name, hint=token.hint, created_at=token.created_at,
                             last_used_at=token.last_used_at)


@account_router.get("/me/registry-tokens", response_model=Page[RegistryTokenRead])
async def list_registry_tokens(session: ReadSession, actor: Annotated[Principal, requires(Permission.token_manage)],
                               cursor: CursorParam = None, limit: Limit = 20) -> Page[RegistryTokenRead]:
    """Your active personal registry tokens (their first characters, never the secret), newest first."""
    page, next_cursor = page_of(await service.list_tokens(session, actor=actor),
                                key=lambda t: (t.created_at.isoformat(), str(t.id)), cursor=cursor, limit=limit,
                                descending=True)
    return Page(items=[_token_read(t) for t in page], next_cursor=next_cursor)


@account_router.post("/me/registry-tokens", status_code=201, response_model=RegistryTokenCreated)
async def create_registry_token(body: RegistryTokenCreate, request: Request, session: WriteSession,
                                actor: Annotated[Principal, requires(Permission.token_manage)]) -> RegistryTokenCreated:
    """A personal, read-only registry token: paste the URLs into VSCodium, code-server, Theia or
    ovsx to install the paid extensions you own (docs/openvsx.md). Shown once."""
    token, secret = await service.create_token(session, actor=actor, name=body.name)
    base = f"{str(request.base_url).rstrip('/')}/openvsx/t/{secret}"
    return RegistryTokenCreated(**_token_read(token).model_dump(), token=secret, registry_url=base,
                                gallery_service_url=f"{base}/vscode/gallery", gallery_item_url=f"{base}/vscode/item")


@account_router.delete("/me/registry-tokens/{token_id}", status_code=204,
                       responses=RegistryTokenNotFound.responses())
async def revoke_registry_token(token_id: uuid.UUID, session: WriteSession,
                                actor: Annotated[Principal, requires(Permission.token_manage)]) -> Response:
    """Revoke a personal registry token: its registry URL stops working at once."""
    await service.revoke_token(session, actor=actor, token_id=token_id)
    return Response(status_code=204)


# The same routes under the personal prefix, as route objects of their own (metrics label each
# request with its own route's path template).
personal_router = APIRouter(route_class=RegistryRoute, tags=["open vsx"], responses=RegistryTokenInvalid.responses())
personal_router.routes.extend(copy.copy(route) for route in router.routes)

__all__ = ["PERSONAL_PREFIX", "PREFIX", "account_router", "personal_router", "router"]
