"""Unchanged Open VSX clients against a real ``mercato serve``: the ``ovsx`` CLI (1.4.x, and
0.10.x, which sends its token as ``?token=``) and Eclipse Theia's ``@theia/ovsx-client``, from
the npm registry (``tests/openvsx/node``, installed by ``.ci/run``). The VSIX fixtures are
built with the ``vsce`` that ``ovsx`` bundles. Accounts, review and purchases go through the API."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.cli.servers import MERCATO, clean_env, serving

pytestmark = pytest.mark.slow

NODE_DIR = Path(__file__).parent / "node"
BIN = NODE_DIR / "node_modules" / ".bin"
ADMIN_PASSWORD = "a long admin pass phrase for the store"
PASSWORD = "a perfectly fine test password"

if not (BIN / "ovsx").exists() or shutil.which("node") is None:
    if os.environ.get("CI"):
        raise RuntimeError("tests/openvsx/node is not installed: .ci/run runs `npm ci` there first")
    pytest.skip("the Open VSX clients are not installed (cd tests/openvsx/node && npm ci)", allow_module_level=True)


@dataclass
class Store:
    base: str
    env: dict[str, str]

    @property
    def registry(self) -> str:
        return f"{self.base}/openvsx"

    def api(self, method: str, path: str, token: str | None = None, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.request(method, f"{self.base}/api/v1{path}", headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]

    def token(self, email: str, password: str = PASSWORD) -> str:
        response = self.api("POST", "/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


@pytest.fixture
def store(tmp_path: Path, database_url: str) -> Iterator[Store]:
    env = clean_env(MERCATO_DATA_DIR=str(tmp_path / "store"), MERCATO_DATABASE_URL=database_url, MERCATO_TESTING="1")
    with serving(env=env, log_path=tmp_path / "serve.log", ready_within=180) as base:
        yield Store(base=base, env=env)


def _node_env(tmp_path: Path) -> dict[str, str]:
    # A home of its own: ovsx keeps tokens there; no proxy, no registry of the developer's.
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OVSX_", "MERCATO_"))}
    return {**env, "HOME": str(home), "NO_COLOR": "1", "NO_PROXY": "127.0.0.1,localhost"}


def _run(tool: str, *args: str, tmp_path: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``ovsx`` / ``vsce`` from node_modules/.bin; ``ovsx-010`` is ovsx 0.10 installed under an alias."""
    command = ["node", str(NODE_DIR / "node_modules" / "ovsx-010" / "bin" / "ovsx")] if tool == "ovsx-010" \
        else [str(BIN / tool)]
    return subprocess.run([*command, *args], check=False, cwd=cwd or tmp_path, env=_node_env(tmp_path),
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.args, result.stdout, result.stderr)
    return result.stdout


def _failed(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, (result.args, result.stdout, result.stderr)
    return result.stdout + result.stderr


def build_vsix(tmp_path: Path, *, name: str, version: str, display_name: str) -> Path:
    """A small extension folder packaged with the vsce that ovsx brings."""
    folder = tmp_path / "src" / f"{name}-{version}"
    folder.mkdir(parents=True)
    (folder / "package.json").write_text(json.dumps({
        "name": name, "displayName": display_name, "description": f"{display_name}: says hello.",
        "version": version, "publisher": "acme", "license": "MIT", "engines": {"vscode": "^1.80.0"},
        "categories": ["Other"], "keywords": ["greeting"], "main": "./extension.js",
        "repository": {"type": "git", "url": "https://example.org/acme/hello.git"},
        "contributes": {"commands": [{"command": f"{name}.hello", "title": "Say hello"}]},
    }, indent=2))
    (folder / "extension.js").write_text("exports.activate = () => {};\nexports.deactivate = () => {};\n")
    (folder / "README.md").write_text(f"# {display_name}\n\nSays hello.\n")
    (folder / "CHANGELOG.md").write_text(f"## {version}\n\n- Hello.\n")
    (folder / "LICENSE").write_text("MIT License\n")
    target = tmp_path / "dist" / f"{name}-{version}.vsix"
    target.parent.mkdir(exist_ok=True)
    _ok(_run("vsce", "package", "--no-dependencies", "--out", str(target), tmp_path=tmp_path, cwd=folder))
    return target


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _accounts(store: Store) -> dict[str, str]:
    created = subprocess.run([*MERCATO, "createsuperuser", "--email", "root@example.org"], check=False,
                             capture_output=True, text=True,
                             env={**store.env, "MERCATO_ADMIN_PASSWORD": ADMIN_PASSWORD}, timeout=120)
    assert created.returncode == 0, created.stderr
    admin = store.token("root@example.org", ADMIN_PASSWORD)
    for email in ("dev@example.org", "buyer@example.org"):
        assert store.api("POST", "/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201
    assert store.api("POST", "/publishers", admin, json={
        "slug": "acme", "name": "Acme Tools", "owner_email": "dev@example.org"}).status_code == 201
    assert store.api("POST", "/admin/users", admin, json={
        "email": "reviewer@example.org", "password": PASSWORD, "roles": ["reviewer"]}).status_code == 201
    dev = store.token("dev@example.org")
    # A Mercato API token for ovsx, narrowed to what publishing needs.
    pat = store.api("POST", "/me/tokens", dev, json={
        "name": "ovsx", "scopes": ["listing:read", "listing:create@acme", "version:upload", "version:submit"]})
    assert pat.status_code == 201, pat.text
    return {"admin": admin, "dev": dev, "pat": pat.json()["token"], "reviewer": store.token("reviewer@example.org"),
            "buyer": store.token("buyer@example.org")}


def _approve_all(store: Store, reviewer: str) -> None:
    tasks = store.api("GET", "/review/tasks", reviewer).json()["items"]
    assert tasks
    for task in tasks:
        if task["status"] == "pending":
            assert store.api("POST", f"/review/tasks/{task['id']}/claim", reviewer).status_code == 200
            approved = store.api("POST", f"/review/tasks/{task['id']}/approve", reviewer)
            assert approved.status_code == 200, approved.text


def test_ovsx_and_theia_publish_find_and_fetch_extensions_and_paid_ones_only_reach_owners(
        store: Store, tmp_path: Path) -> None:
    tokens = _accounts(store)
    pat, registry = tokens["pat"], store.registry
    first = build_vsix(tmp_path, name="hello-ext", version="1.0.0", display_name="Hello Extension")
    second = build_vsix(tmp_path, name="hello-ext", version="1.1.0", display_name="Hello Extension")

    assert "PAT valid to publish at acme" in _ok(_run("ovsx", "verify-pat", "acme", "-p", pat, "-r", registry,
                                                       tmp_path=tmp_path))
    assert _failed(_run("ovsx", "verify-pat", "acme", "-p", "mct_not-a-token", "-r", registry, tmp_path=tmp_path))
    # the namespace is the developer's publisher already: ovsx create-namespace succeeds
    assert "Created namespace acme" in _ok(_run("ovsx", "create-namespace", "acme", "-p", pat, "-r", registry,
                                                 tmp_path=tmp_path))

    published = _ok(_run("ovsx", "publish", str(first), "-p", pat, "-r", registry, tmp_path=tmp_path))
    assert "Published acme.hello-ext v1.0.0" in published and "awaits review" in published
    duplicate = _failed(_run("ovsx", "publish", str(first), "-p", pat, "-r", registry, tmp_path=tmp_path))
    assert "is already published." in duplicate
    skipped = _ok(_run("ovsx", "publish", str(first), "-p", pat, "-r", registry, "--skip-duplicate",
                       tmp_path=tmp_path))
    assert "Skipping publish" in skipped
    # ovsx 0.10 sends the token as ?token= (and reads no /api/version)
    old = _ok(_run("ovsx-010", "publish", str(second), "-p", pat, "-r", registry, tmp_path=tmp_path))
    assert "Published acme.hello-ext v1.1.0" in old

    # nothing is visible before a reviewer approves it
    assert "not found" in _failed(_run("ovsx", "show", "acme.hello-ext", "-r", registry, tmp_path=tmp_path)).lower()
    _approve_all(store, tokens["reviewer"])

    found = _ok(_run("ovsx", "search", "hello", "-r", registry, tmp_path=tmp_path))
    assert "acme.hello-ext" in found and "1.1.0" in found
    shown = _ok(_run("ovsx", "show", "acme.hello-ext", "-r", registry, tmp_path=tmp_path))
    assert "Hello Extension" in shown and "Acme Tools" in shown and "1.0.0" in shown and "no ratings" in shown
    out = tmp_path / "got"
    _ok(_run("ovsx", "get", "acme.hello-ext", "-o", f"{out}/", "-r", registry, tmp_path=tmp_path))
    assert sha256(out / "acme.hello-ext-1.1.0.vsix") == sha256(second)
    _ok(_run("ovsx", "get", "acme.hello-ext", "-v", "~1.0.0", "-o", f"{out}/", "-r", registry, tmp_path=tmp_path))
    assert sha256(out / "acme.hello-ext-1.0.0.vsix") == sha256(first)

    theia = subprocess.run(["node", str(NODE_DIR / "theia-client.js"), f"{registry}/", "hello", "acme.hello-ext"],
                           check=False, capture_output=True, text=True, timeout=120, env=_node_env(tmp_path))
    assert theia.returncode == 0, theia.stderr
    answers = json.loads(theia.stdout)
    assert [e["name"] for e in answers["search"]["extensions"]] == ["hello-ext"]
    assert [e["version"] for e in answers["query"]["extensions"]] == ["1.1.0", "1.0.0"]
    assert answers["query"]["extensions"][0]["engines"] == {"vscode": "^1.80.0"}

    # a paid extension: the listing is priced through the API, the VSIX published with ovsx
    paid = store.api("POST", "/listings", tokens["dev"], json={
        "publisher": "acme", "slug": "paid-ext", "name": "Paid Extension", "kind": "plugin", "summary": "Costs.",
        "description": "A paid extension.", "category": None, "tags": [],
        "offers": [{"delivery": "digital", "price": {"amount": 500, "currency": "USD"}}]})
    assert paid.status_code == 201, paid.text
    paid_vsix = build_vsix(tmp_path, name="paid-ext", version="2.0.0", display_name="Paid Extension")
    _ok(_run("ovsx", "publish", str(paid_vsix), "-p", pat, "-r", registry, tmp_path=tmp_path))
    _approve_all(store, tokens["reviewer"])

    shown = _ok(_run("ovsx", "show", "acme.paid-ext", "-r", registry, tmp_path=tmp_path))
    assert "Not downloadable from this registry" in shown  # metadata public, marked
    refused = _failed(_run("ovsx", "get", "acme.paid-ext", "-o", f"{out}/", "-r", registry, tmp_path=tmp_path))
    # (ovsx shows only the status of a refused download; the body says where to buy it)
    assert "status 403" in refused and not (out / "acme.paid-ext-2.0.0.vsix").exists()
    refusal = httpx.get(f"{registry}/api/acme/paid-ext/2.0.0/file/acme.paid-ext-2.0.0.vsix", timeout=30)
    assert refusal.status_code == 403 and refusal.json()["code"] == "purchase_required"
    assert refusal.json()["purchase_url"] == f"{store.base}/listings/paid-ext"

    personal = store.api("POST", "/me/registry-tokens", tokens["buyer"], json={"name": "laptop"})
    assert personal.status_code == 201, personal.text
    personal_url = personal.json()["registry_url"]
    not_yet = _failed(_run("ovsx", "get", "acme.paid-ext", "-o", f"{out}/", "-r", personal_url, tmp_path=tmp_path))
    assert "status 403" in not_yet
    buyer_id = store.api("GET", "/me", tokens["buyer"]).json()["id"]
    granted = store.api("POST", "/admin/entitlements", tokens["admin"], json={
        "user_id": buyer_id, "listing_id": paid.json()["id"], "reason": "bought at the counter"})
    assert granted.status_code == 201, granted.text
    _ok(_run("ovsx", "get", "acme.paid-ext", "-o", f"{out}/", "-r", personal_url, tmp_path=tmp_path))
    assert sha256(out / "acme.paid-ext-2.0.0.vsix") == sha256(paid_vsix)
    library = store.api("GET", "/library", tokens["buyer"]).json()["items"]
    assert [item.get("download_count") for item in library if item["listing"]["slug"] == "paid-ext"] in ([1], [None])

    token_id = personal.json()["id"]
    assert store.api("DELETE", f"/me/registry-tokens/{token_id}", tokens["buyer"]).status_code == 204
    revoked = _failed(_run("ovsx", "get", "acme.paid-ext", "-o", f"{tmp_path / 'again'}/", "-r", personal_url,
                           tmp_path=tmp_path))
    assert "revoked" in revoked and not (tmp_path / "again").exists()
