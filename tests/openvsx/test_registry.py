"""The Open VSX adapter in process: the JSON shapes (no nulls anywhere), publishing through the
review queue, the gallery's filters and flags, hostile VSIX files, paid extensions and the
personal registry URL. The unchanged clients run against a real server in test_clients.py."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import uuid
import zipfile
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.actors import Actor, Actors

V1 = "/api/v1"
REGISTRY = "/openvsx"
VSIX_TYPE = {"Content-Type": "application/octet-stream"}
FLAGS_ALL = 0x1 | 0x2 | 0x10 | 0x80 | 0x100


def vsix(publisher: str, name: str, version: str, *, categories: tuple[str, ...] = ("Other",),
         keywords: tuple[str, ...] = (), target: str | None = None, members: dict[str, bytes] | None = None,
         package: dict[str, Any] | None = None) -> bytes:
    """A VSIX as vsce lays it out: extension.vsixmanifest, [Content_Types].xml, extension/…"""
    package_json = package if package is not None else {
        "name": name, "publisher": publisher, "version": version, "displayName": name.title(),
        "description": f"{name} does things.", "engines": {"vscode": "^1.80.0"}, "categories": list(categories),
        "keywords": list(keywords), "license": "MIT", "repository": {"url": "https://example.org/repo.git"}}
    target_attribute = f' TargetPlatform="{target}"' if target else ""
    manifest = (f'<?xml version="1.0" encoding="utf-8"?><PackageManifest Version="2.0.0"><Metadata>'
                f'<Identity Language="en-US" Id="{name}" Version="{version}" Publisher="{publisher}"'
                f'{target_attribute}/></Metadata><Assets>'
                '<Asset Type="Microsoft.VisualStudio.Code.Manifest" Path="extension/package.json" Addressable="true"/>'
                '<Asset Type="Microsoft.VisualStudio.Services.Content.Details" Path="extension/README.md"/>'
                '<Asset Type="Microsoft.VisualStudio.Services.Content.Changelog" Path="extension/CHANGELOG.md"/>'
                '</Assets></PackageManifest>')
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("extension.vsixmanifest", manifest)
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("extension/package.json", json.dumps(package_json))
        archive.writestr("extension/README.md", f"# {name}\n")
        archive.writestr("extension/CHANGELOG.md", f"## {version}\n")
        archive.writestr("extension/extension.js", "exports.activate = () => {};\n")
        for path, data in (members or {}).items():
            archive.writestr(path, data)
    return buffer.getvalue()


def assert_no_nulls(value: Any, where: str = "$") -> None:
    """Absent values are omitted, never null, at any depth (ovsx crashes on "averageRating": null)."""
    assert value is not None, f"null at {where}"
    if isinstance(value, dict):
        for key, item in value.items():
            assert_no_nulls(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert_no_nulls(item, f"{where}[{index}]")


@dataclass
class Registry:
    client: httpx.AsyncClient
    actors: Actors
    dev: Actor
    reviewer: Actor
    admin: Actor
    namespace: str

    async def publish(self, data: bytes, *, token: str | None = None, query: bool = False,
                      expect: int = 201) -> dict[str, Any]:
        token = token or self.dev.access_token
        url = f"{REGISTRY}/api/-/publish" + (f"?token={token}" if query else "")
        headers = {**VSIX_TYPE, **({} if query else {"Authorization": f"Bearer {token}"})}
        response = await self.client.post(url, content=data, headers=headers)
        assert response.status_code == expect, response.text
        return response.json()  # type: ignore[no-any-return]

    async def approve_all(self) -> None:
        tasks = (await self.client.get(f"{V1}/review/tasks", headers=self.reviewer.headers)).json()["items"]
        for task in tasks:
            if task["status"] != "pending":
                continue
            claimed = await self.client.post(f"{V1}/review/tasks/{task['id']}/claim", headers=self.reviewer.headers)
            assert claimed.status_code == 200, claimed.text
            approved = await self.client.post(f"{V1}/review/tasks/{task['id']}/approve", headers=self.reviewer.headers)
            assert approved.status_code == 200, approved.text

    async def get(self, path: str, *, base: str = REGISTRY, expect: int = 200) -> Any:
        response = await self.client.get(f"{base}{path}")
        assert response.status_code == expect, response.text
        return response.json()

    async def gallery(self, criteria: list[tuple[int, str]], flags: int, *, base: str = REGISTRY,
                      **page: int) -> list[dict[str, Any]]:
        response = await self.client.post(f"{base}/vscode/gallery/extensionquery", json={
            "filters": [{"criteria": [{"filterType": kind, "value": value} for kind, value in criteria], **page}],
            "flags": flags})
        assert response.status_code == 200, response.text
        body = response.json()
        assert_no_nulls(body)
        return body["results"][0]["extensions"]  # type: ignore[no-any-return]


@pytest.fixture
async def registry(client: httpx.AsyncClient, actors: Actors) -> Registry:
    dev = await actors.create("developer")
    namespace = f"ns{uuid.uuid4().hex[:8]}"
    await actors.publisher(dev, slug=namespace)
    return Registry(client=client, actors=actors, dev=dev, reviewer=await actors.create("reviewer"),
                    admin=await actors.create("marketplace_admin"), namespace=namespace)


async def test_a_published_vsix_awaits_review_and_then_answers_every_shape_without_nulls(registry: Registry) -> None:
    ns = registry.namespace
    answer = await registry.publish(vsix(ns, "hello", "1.0.0", categories=("Themes",)))
    assert answer["namespace"] == ns and answer["name"] == "hello" and answer["version"] == "1.0.0"
    assert "awaits review" in answer["warning"]
    assert_no_nulls(answer)
    await registry.get(f"/api/{ns}/hello", expect=404)  # not before approval
    assert (await registry.get(f"/api/{ns}"))["extensions"] == {}
    newest = vsix(ns, "hello", "1.1.0")
    await registry.publish(newest)
    await registry.approve_all()

    extension = await registry.get(f"/api/{ns}/hello")
    assert_no_nulls(extension)
    assert extension["version"] == "1.1.0" and extension["versionAlias"] == ["latest"]
    assert list(extension["allVersions"]) == ["latest", "1.1.0", "1.0.0"]
    assert extension["engines"] == {"vscode": "^1.80.0"} and extension["targetPlatform"] == "universal"
    assert extension["files"]["download"].endswith(f"/openvsx/api/{ns}/hello/1.1.0/file/{ns}.hello-1.1.0.vsix")
    assert {"manifest", "readme", "changelog", "vsixmanifest", "sha256"} <= set(extension["files"])
    assert "averageRating" not in extension and extension["reviewCount"] == 0 and extension["downloadable"] is True
    assert extension["namespaceDisplayName"] == f"Publisher {ns}" and extension["publishedBy"]["loginName"] == ns
    assert (await registry.get(f"/api/{ns}/hello/latest"))["version"] == "1.1.0"
    older = await registry.get(f"/api/{ns}/hello/1.0.0")
    assert older["versionAlias"] == [] and older["categories"] == ["Themes"]
    assert_no_nulls(older)
    references = await registry.get(f"/api/{ns}/hello/version-references?size=1&offset=1")
    assert_no_nulls(references)
    assert references["totalSize"] == 2 and [v["version"] for v in references["versions"]] == ["1.0.0"]
    namespace = await registry.get(f"/api/{ns}")
    assert_no_nulls(namespace)
    assert namespace["extensions"] == {"hello": f"http://mercato.test/openvsx/api/{ns}/hello"}
    search = await registry.get("/api/-/search?query=hello&includeAllVersions=true")
    assert_no_nulls(search)
    assert [(e["namespace"], e["name"]) for e in search["extensions"]] == [(ns, "hello")]
    assert [v["version"] for v in search["extensions"][0]["allVersions"]] == ["1.1.0", "1.0.0"]
    query = await registry.get(f"/api/v2/-/query?extensionId={ns}.hello&includeAllVersions=true")
    assert_no_nulls(query)
    assert [e["version"] for e in query["extensions"]] == ["1.1.0", "1.0.0"] and query["totalSize"] == 2
    assert [e["version"] for e in (await registry.get(f"/api/v2/-/query?namespaceName={ns}"))["extensions"]] \
        == ["1.1.0"]
    readme = await registry.client.get(f"{REGISTRY}/api/{ns}/hello/1.1.0/file/README.md")
    assert readme.status_code == 200 and readme.text == "# hello\n"
    downloaded = await registry.client.get(extension["files"]["download"])
    assert downloaded.status_code == 200
    assert downloaded.headers["x-checksum-sha256"] == hashlib.sha256(downloaded.content).hexdigest()
    assert downloaded.content == newest
    assert "x-signature-ed25519" in downloaded.headers  # signed on approval
    assert (await registry.client.get(extension["files"]["sha256"])).text == downloaded.headers["x-checksum-sha256"]
    # the store API serves the same version as a .vsix (not as a .tar.gz)
    through_api = await registry.client.get(f"{V1}/listings/hello/versions/1.1.0/download",
                                            headers=registry.dev.headers)
    assert through_api.status_code == 200 and through_api.content == newest
    assert through_api.headers["content-disposition"] == 'attachment; filename="hello-1.1.0.vsix"'
    assert through_api.headers["content-type"] == "application/zip"


async def test_a_duplicate_publish_is_refused_with_the_text_skip_duplicate_matches(registry: Registry) -> None:
    ns = registry.namespace
    await registry.publish(vsix(ns, "dup", "1.0.0"))
    refused = await registry.publish(vsix(ns, "dup", "1.0.0"), expect=409)
    assert refused["error"].endswith("is already published.") and refused["code"] == "extension_version_exists"


async def test_the_token_may_come_as_a_query_parameter_like_ovsx_0_10_sends_it(registry: Registry,
                                                                              client: httpx.AsyncClient) -> None:
    created = await client.post(f"{V1}/me/tokens", headers=registry.dev.headers, json={
        "name": "ovsx", "scopes": ["listing:read", f"listing:create@{registry.namespace}", "version:upload",
                                   "version:submit"]})
    pat = created.json()["token"]
    verified = await client.get(f"{REGISTRY}/api/{registry.namespace}/verify-pat?token={pat}")
    assert verified.status_code == 200 and "success" in verified.json()
    answer = await registry.publish(vsix(registry.namespace, "old-cli", "1.0.0"), token=pat, query=True)
    assert answer["version"] == "1.0.0"
    refused = await client.get(f"{REGISTRY}/api/{registry.namespace}/verify-pat?token=mct_forged")
    assert refused.status_code == 401 and refused.json()["error"]


@pytest.mark.parametrize(("members", "code"), [
    ({"../evil.js": b"x"}, "archive_unsafe_path"),
    ({"extension/link\\evil": b"x"}, "archive_unsafe_path"),
])
async def test_a_hostile_vsix_is_refused_by_the_archive_inspector(registry: Registry, members: dict[str, bytes],
                                                                 code: str) -> None:
    refused = await registry.publish(vsix(registry.namespace, "bad", "1.0.0", members=members), expect=422)
    assert refused["code"] == code and refused["error"]


async def test_a_file_that_is_no_vsix_is_refused(registry: Registry) -> None:
    tarball = io.BytesIO()
    with tarfile.open(fileobj=tarball, mode="w:gz") as archive:
        info = tarfile.TarInfo("extension/package.json")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"{}"))
    assert (await registry.publish(tarball.getvalue(), expect=422))["code"] == "archive_unsupported"
    no_package = io.BytesIO()
    with zipfile.ZipFile(no_package, "w") as archive:
        archive.writestr("readme.md", "hi")
    assert (await registry.publish(no_package.getvalue(), expect=422))["code"] == "manifest_missing"
    wrong = vsix(registry.namespace, "x", "1.0.0", package={"name": "x", "publisher": registry.namespace,
                                                             "version": "1.0"})
    assert (await registry.publish(wrong, expect=422))["code"] == "manifest_invalid"
    bomb = vsix(registry.namespace, "bomb", "1.0.0", members={"extension/zeros.bin": b"\0" * (80 * 1024 * 1024)})
    assert (await registry.publish(bomb, expect=422))["code"] == "archive_bomb"


async def test_publishing_to_a_namespace_of_another_publisher_is_forbidden(registry: Registry) -> None:
    other = await registry.actors.create("developer")
    refused = await registry.publish(vsix(registry.namespace, "x", "1.0.0"), token=other.access_token, expect=403)
    assert refused["error"]


async def test_the_gallery_filters_by_name_id_text_tag_category_and_target_and_follows_the_flags(
        registry: Registry) -> None:
    ns = registry.namespace
    await registry.publish(vsix(ns, "night-theme", "1.0.0", categories=("Themes",), keywords=("dark",)))
    await registry.publish(vsix(ns, "night-theme", "1.1.0", categories=("Themes",), keywords=("dark",)))
    await registry.publish(vsix(ns, "linter", "2.0.0", categories=("Linters",), target="linux-x64"))
    await registry.approve_all()

    by_name = await registry.gallery([(7, f"{ns}.night-theme")], 0x200)
    assert [e["extensionName"] for e in by_name] == ["night-theme"]
    assert [v["version"] for v in by_name[0]["versions"]] == ["1.1.0"]  # latest version only
    assert by_name[0]["publisher"]["publisherName"] == ns and by_name[0]["statistics"] == []
    assert [e["extensionName"] for e in await registry.gallery([(4, by_name[0]["extensionId"])], 0)] \
        == ["night-theme"]
    assert [e["extensionName"] for e in await registry.gallery([(10, "linter")], 0)] == ["linter"]
    assert [e["extensionName"] for e in await registry.gallery([(1, "dark")], 0)] == ["night-theme"]
    assert [e["extensionName"] for e in await registry.gallery([(5, "Linters")], 0)] == ["linter"]
    assert await registry.gallery([(7, f"{ns}.linter"), (8, "darwin-arm64")], 0x1) == []
    assert len(await registry.gallery([(7, f"{ns}.linter"), (8, "linux-x64")], 0x1)) == 1

    full = (await registry.gallery([(7, f"{ns}.night-theme")], FLAGS_ALL))[0]
    assert [v["version"] for v in full["versions"]] == ["1.1.0", "1.0.0"]
    latest = full["versions"][0]
    assert latest["assetUri"].endswith(f"/openvsx/vscode/asset/{ns}/night-theme/1.1.0")
    files = {f["assetType"]: f["source"] for f in latest["files"]}
    assert files["Microsoft.VisualStudio.Services.VSIXPackage"].endswith(".vsix")
    assert "Microsoft.VisualStudio.Code.Manifest" in files
    assert {"key": "Microsoft.VisualStudio.Code.Engine", "value": "^1.80.0"} in latest["properties"]
    assert [s["statisticName"] for s in full["statistics"]] == ["install", "ratingcount"]
    without = (await registry.gallery([(7, f"{ns}.night-theme")], 0))[0]
    assert without["versions"] == [] and "assetUri" not in str(without)

    asset = await registry.client.get(f"{latest['assetUri']}/Microsoft.VisualStudio.Services.VSIXPackage")
    assert asset.status_code == 200 and zipfile.is_zipfile(io.BytesIO(asset.content))
    legacy = await registry.client.get(
        f"{REGISTRY}/vscode/gallery/publishers/{ns}/vsextensions/night-theme/1.1.0/vspackage")
    assert legacy.status_code == 200 and legacy.content == asset.content
    item = await registry.client.get(f"{REGISTRY}/vscode/item?itemName={ns}.night-theme")
    assert item.status_code == 302 and item.headers["location"].endswith("/listings/night-theme")


async def test_a_yanked_version_disappears_from_the_registry(registry: Registry, client: httpx.AsyncClient) -> None:
    ns = registry.namespace
    await registry.publish(vsix(ns, "yanky", "1.0.0"))
    await registry.publish(vsix(ns, "yanky", "1.1.0"))
    await registry.approve_all()
    yanked = await client.post(f"{V1}/listings/yanky/versions/1.1.0/yank", headers=registry.dev.headers,
                               json={"reason": "broken build"})
    assert yanked.status_code == 200, yanked.text
    extension = await registry.get(f"/api/{ns}/yanky")
    assert extension["version"] == "1.0.0" and "1.1.0" not in extension["allVersions"]
    await registry.get(f"/api/{ns}/yanky/1.1.0", expect=404)


async def test_a_paid_extension_reaches_only_its_owner_through_the_personal_registry_url(
        registry: Registry, client: httpx.AsyncClient) -> None:
    ns = registry.namespace
    listing = await client.post(f"{V1}/listings", headers=registry.dev.headers, json={
        "publisher": ns, "slug": f"paid-{ns}", "name": "Paid", "kind": "plugin", "summary": "Costs.",
        "description": "Paid.", "category": None, "tags": [],
        "offers": [{"delivery": "digital", "price": {"amount": 500, "currency": "USD"}}]})
    assert listing.status_code == 201, listing.text
    name = f"paid-{ns}"
    await registry.publish(vsix(ns, name, "1.0.0"))
    await registry.approve_all()

    anonymous = await registry.get(f"/api/{ns}/{name}")
    assert anonymous["downloadable"] is False and anonymous["purchaseUrl"] == f"http://mercato.test/listings/{name}"
    assert anonymous["price"] == {"amount": 500, "currency": "USD"}
    refused = await client.get(anonymous["files"]["download"])
    assert refused.status_code == 403 and refused.json()["code"] == "purchase_required"
    assert await registry.gallery([(7, f"{ns}.{name}")], 0x200) == []  # left out for VS Code

    buyer = await registry.actors.create()
    created = await client.post(f"{V1}/me/registry-tokens", headers=buyer.headers, json={"name": "laptop"})
    assert created.status_code == 201, created.text
    token = created.json()
    personal = f"{REGISTRY}/t/{token['token']}"
    assert token["registry_url"] == f"http://mercato.test{personal}"
    assert (await client.get(f"{V1}/me/registry-tokens", headers=buyer.headers)).json()["items"][0]["hint"] == \
        token["token"][:10]
    assert (await client.get((await registry.get(f"/api/{ns}/{name}", base=personal))["files"]["download"])) \
        .status_code == 403  # not bought yet
    granted = await client.post(f"{V1}/admin/entitlements", headers=registry.admin.headers, json={
        "user_id": buyer.id, "listing_id": listing.json()["id"]})
    assert granted.status_code == 201, granted.text

    owned = await registry.get(f"/api/{ns}/{name}", base=personal)
    assert owned["downloadable"] is True and "purchaseUrl" not in owned
    assert all(f"/openvsx/t/{token['token']}/" in url for url in [owned["url"], *owned["files"].values(),
                                                                  *owned["allVersions"].values()])
    found = await registry.gallery([(7, f"{ns}.{name}")], FLAGS_ALL, base=personal)
    source = {f["assetType"]: f["source"] for f in found[0]["versions"][0]["files"]}
    download = await client.get(source["Microsoft.VisualStudio.Services.VSIXPackage"])
    assert download.status_code == 200 and zipfile.is_zipfile(io.BytesIO(download.content))
    library = (await client.get(f"{V1}/library", headers=buyer.headers)).json()["items"]
    assert [item["download_count"] for item in library if item["listing"]["slug"] == name] == [1]

    other = await registry.actors.create()
    others = (await client.post(f"{V1}/me/registry-tokens", headers=other.headers, json={"name": "x"})).json()
    assert (await client.get(source["Microsoft.VisualStudio.Services.VSIXPackage"]
                             .replace(token["token"], others["token"]))).status_code == 403

    revoked = await client.delete(f"{V1}/me/registry-tokens/{token['id']}", headers=buyer.headers)
    assert revoked.status_code == 204
    gone = await client.get(source["Microsoft.VisualStudio.Services.VSIXPackage"])
    assert gone.status_code == 401 and gone.json()["code"] == "registry_token_invalid"
    assert (await client.delete(f"{V1}/me/registry-tokens/{token['id']}", headers=buyer.headers)).status_code == 404


async def test_invalid_parameters_are_refused_with_the_error_text_ovsx_prints(client: httpx.AsyncClient) -> None:
    for url in (f"{REGISTRY}/api/-/search?size=-1", f"{REGISTRY}/api/-/search?sortOrder=sideways",
                f"{REGISTRY}/api/v2/-/query?includeAllVersions=maybe", f"{REGISTRY}/api/-/search?targetPlatform=amiga"):
        refused = await client.get(url)
        assert refused.status_code == 422, url
        assert refused.json()["code"] == "validation_failed" and refused.json()["error"].startswith("Invalid request")
