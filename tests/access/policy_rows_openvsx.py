"""Policy rows (A1) of the Open VSX adapter and the personal registry tokens: reading the
registry and the gallery is public (a personal token in the path only narrows paid downloads);
publishing takes version:upload, creating a namespace listing:create; tokens are the caller's own."""

from __future__ import annotations

V1 = "/api/v1"
PUBLIC = "public"
UPLOAD = "version:upload"
TOKENS = "token:manage"

_REGISTRY: dict[tuple[str, str], str] = {
    ("GET", "/api/version"): PUBLIC,
    ("GET", "/api/-/size-limit"): PUBLIC,
    ("GET", "/api/{namespace}/verify-pat"): UPLOAD,
    ("POST", "/api/-/namespace/create"): "listing:create",
    ("POST", "/api/-/publish"): UPLOAD,
    ("GET", "/api/-/search"): PUBLIC,
    ("GET", "/api/v2/-/query"): PUBLIC,
    ("GET", "/api/{namespace}"): PUBLIC,
    ("GET", "/api/{namespace}/{extension}/version-references"): PUBLIC,
    ("GET", "/api/{namespace}/{extension}/{target}/version-references"): PUBLIC,
    ("GET", "/api/{namespace}/{extension}"): PUBLIC,
    ("GET", "/api/{namespace}/{extension}/{target_or_version}"): PUBLIC,
    ("GET", "/api/{namespace}/{extension}/{target}/{version}"): PUBLIC,
    ("GET", "/api/{namespace}/{extension}/{version}/file/{file_name}"): PUBLIC,
    ("GET", "/api/{namespace}/{extension}/{target}/{version}/file/{file_name}"): PUBLIC,
    ("POST", "/vscode/gallery/extensionquery"): PUBLIC,
    ("GET", "/vscode/asset/{namespace}/{extension}/{version}/{asset_type}"): PUBLIC,
    ("GET", "/vscode/gallery/publishers/{namespace}/vsextensions/{extension}/{version}/vspackage"): PUBLIC,
    ("GET", "/vscode/item"): PUBLIC,
}

POLICY_ROWS: dict[tuple[str, str], str] = {
    ("GET", f"{V1}/me/registry-tokens"): TOKENS,
    ("POST", f"{V1}/me/registry-tokens"): TOKENS,
    ("DELETE", f"{V1}/me/registry-tokens/{{token_id}}"): TOKENS,
    **{(method, f"/openvsx{path}"): policy for (method, path), policy in _REGISTRY.items()},
    **{(method, f"/openvsx/t/{{registry_token}}{path}"): policy for (method, path), policy in _REGISTRY.items()},
}
