"""Matrix rows (A2) of the Open VSX adapter and the personal registry tokens.

Registry reads are public: a missing extension is 404 for everyone; a personal registry URL
with a token that is not one is 401 for everyone. Publishing needs version:upload and a
membership of the namespace's publisher (admins act for any); a namespace is created only by
those who may create publishers, and is already the developer's own publisher."""

from __future__ import annotations

import uuid

from tests.access.matrix import (
    ADMINS,
    ANON,
    DEV,
    OTHER_DEV,
    REVIEWER,
    USER,
    V1,
    Row,
    dynamic,
    everyone,
    only,
    static,
)
from tests.access.policy_rows_openvsx import _REGISTRY

NOWHERE = uuid.UUID(int=0)
BAD_TOKEN = "mcv_no-such-token"
# A request per registry route, against a namespace and an extension that do not exist.
_EXAMPLES: dict[tuple[str, str], tuple[str, int, dict[str, object]]] = {
    ("GET", "/api/version"): ("/api/version", 200, {}),
    ("GET", "/api/-/size-limit"): ("/api/-/size-limit?namespace=x&extension=y", 200, {}),
    ("GET", "/api/-/search"): ("/api/-/search?query=nothing-like-this", 200, {}),
    ("GET", "/api/v2/-/query"): ("/api/v2/-/query?extensionId=nobody.nothing", 200, {}),
    ("GET", "/api/{namespace}"): ("/api/nobody", 404, {}),
    ("GET", "/api/{namespace}/{extension}/version-references"): ("/api/nobody/nothing/version-references", 404, {}),
    ("GET", "/api/{namespace}/{extension}/{target}/version-references"):
        ("/api/nobody/nothing/linux-x64/version-references", 404, {}),
    ("GET", "/api/{namespace}/{extension}"): ("/api/nobody/nothing", 404, {}),
    ("GET", "/api/{namespace}/{extension}/{target_or_version}"): ("/api/nobody/nothing/1.0.0", 404, {}),
    ("GET", "/api/{namespace}/{extension}/{target}/{version}"): ("/api/nobody/nothing/linux-x64/1.0.0", 404, {}),
    ("GET", "/api/{namespace}/{extension}/{version}/file/{file_name}"):
        ("/api/nobody/nothing/1.0.0/file/nobody.nothing-1.0.0.vsix", 404, {}),
    ("GET", "/api/{namespace}/{extension}/{target}/{version}/file/{file_name}"):
        ("/api/nobody/nothing/linux-x64/1.0.0/file/package.json", 404, {}),
    ("POST", "/vscode/gallery/extensionquery"): ("/vscode/gallery/extensionquery", 200, {"json": {
        "filters": [{"criteria": [{"filterType": 7, "value": "nobody.nothing"}]}], "flags": 0x200}}),
    ("GET", "/vscode/asset/{namespace}/{extension}/{version}/{asset_type}"):
        ("/vscode/asset/nobody/nothing/1.0.0/Microsoft.VisualStudio.Services.VSIXPackage", 404, {}),
    ("GET", "/vscode/gallery/publishers/{namespace}/vsextensions/{extension}/{version}/vspackage"):
        ("/vscode/gallery/publishers/nobody/vsextensions/nothing/1.0.0/vspackage", 404, {}),
    ("GET", "/vscode/item"): ("/vscode/item?itemName=nobody.nothing", 404, {}),
}
PUBLISHERS = (DEV, *ADMINS)


def _verify(world, who):  # type: ignore[no-untyped-def]
    return {"url": f"/openvsx/api/{world.mine}/verify-pat"}


def _create_namespace(world, who):  # type: ignore[no-untyped-def]
    return {"url": "/openvsx/api/-/namespace/create", "json": {"name": world.mine}}


MATRIX_ROWS: list[Row] = [
    Row("list my registry tokens", "GET", f"{V1}/me/registry-tokens", {**everyone(200), ANON: 401},
        static(f"{V1}/me/registry-tokens")),
    Row("create a registry token", "POST", f"{V1}/me/registry-tokens", {**everyone(201), ANON: 401},
        static(f"{V1}/me/registry-tokens", json={"name": "editor"})),
    Row("revoke a missing registry token", "DELETE", f"{V1}/me/registry-tokens/{{token_id}}",
        {**everyone(404), ANON: 401}, static(f"{V1}/me/registry-tokens/{NOWHERE}")),
    Row("verify a token for my publisher's namespace", "GET", "/openvsx/api/{namespace}/verify-pat",
        {**only(*PUBLISHERS, status=200), OTHER_DEV: 403}, dynamic(_verify)),
    Row("create my publisher's namespace", "POST", "/openvsx/api/-/namespace/create",
        # the other developer and admins: someone else's publisher (409); users and reviewers lack listing:create
        {**only(DEV, OTHER_DEV, *ADMINS, status=409), DEV: 201}, dynamic(_create_namespace)),
    Row("publish something that is not a VSIX", "POST", "/openvsx/api/-/publish",
        {**only(*PUBLISHERS, OTHER_DEV, status=422)},
        static("/openvsx/api/-/publish", content=b"not a zip", headers={"Content-Type": "application/octet-stream"})),
    Row("verify a token through a bad personal URL", "GET", "/openvsx/t/{registry_token}/api/{namespace}/verify-pat",
        {**everyone(401), USER: 403, REVIEWER: 403}, static(f"/openvsx/t/{BAD_TOKEN}/api/nobody/verify-pat")),
    Row("create a namespace through a bad personal URL", "POST",
        "/openvsx/t/{registry_token}/api/-/namespace/create", {**everyone(401), USER: 403, REVIEWER: 403},
        static(f"/openvsx/t/{BAD_TOKEN}/api/-/namespace/create", json={"name": "nobody"})),
    Row("publish through a bad personal URL", "POST", "/openvsx/t/{registry_token}/api/-/publish",
        {**everyone(401), USER: 403, REVIEWER: 403},
        static(f"/openvsx/t/{BAD_TOKEN}/api/-/publish", content=b"x",
               headers={"Content-Type": "application/octet-stream"})),
]

for (method, route), (url, status, extra) in _EXAMPLES.items():
    MATRIX_ROWS.append(Row(f"open vsx {method} {route}", method, f"/openvsx{route}", everyone(status),
                           static(f"/openvsx{url}", **extra)))
    MATRIX_ROWS.append(Row(f"open vsx {method} {route} (bad personal URL)", method,
                           f"/openvsx/t/{{registry_token}}{route}", everyone(401),
                           static(f"/openvsx/t/{BAD_TOKEN}{url}", **extra)))

assert {(r.method, r.route) for r in MATRIX_ROWS} >= {(m, f"/openvsx{p}") for m, p in _REGISTRY}
