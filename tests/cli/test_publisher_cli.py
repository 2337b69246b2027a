"""The publisher's command line as a publisher, a reviewer and a user live it: a real
``mercato serve`` subprocess, and every ``mercato`` command run as its own subprocess with
its own config dir. Accounts, the publisher and the listing are arranged through the API."""

from __future__ import annotations

import socket
import subprocess
import tarfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.cli.servers import MERCATO, clean_env, free_port, serving

pytestmark = pytest.mark.slow

ADMIN_PASSWORD = "a long admin pass phrase for the store"
PASSWORD = "a perfectly fine test password"


def _clean_env(**extra: str) -> dict[str, str]:
    return clean_env(COLUMNS="160", **extra)


def _run(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MERCATO, *args], env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The command failed with exit 1 and one readable line on stderr; returns that line."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@dataclass
class Cli:
    """``mercato`` for one person: their own config dir (where `mercato login` saves the token)."""

    config_dir: Path
    store_env: dict[str, str] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        return _clean_env(MERCATO_CONFIG_DIR=str(self.config_dir), **extra)

    def __call__(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return _run(*args, env=self.env(**extra))

    def ok(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        result = self(*args, **extra)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        return result


@dataclass
class Store:
    base: str
    env: dict[str, str]

    def api(self, method: str, path: str, token: str | None = None, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.request(method, f"{self.base}/api/v1{path}", headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]

    def token(self, email: str, password: str = PASSWORD) -> str:
        response = self.api("POST", "/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


@pytest.fixture
def store(tmp_path: Path, database_url: str) -> Iterator[Store]:
    env = _clean_env(MERCATO_DATA_DIR=str(tmp_path / "store"), MERCATO_DATABASE_URL=database_url,
                     MERCATO_TESTING="1")
    with serving(env=env, log_path=tmp_path / "serve.log") as base:
        yield Store(base=base, env=env)


def _accounts(store: Store) -> tuple[str, str]:
    """A super admin (through `mercato createsuperuser`), a developer with a publisher, a reviewer.
    Returns (admin token, publisher slug)."""
    created = _run("createsuperuser", "--email", "root@example.org",
                   env={**store.env, "MERCATO_ADMIN_PASSWORD": ADMIN_PASSWORD})
    assert created.returncode == 0, created.stderr
    admin = store.token("root@example.org", ADMIN_PASSWORD)
    registered = store.api("POST", "/auth/register", json={"email": "dev@example.org", "password": PASSWORD})
    assert registered.status_code == 201, registered.text
    publisher = store.api("POST", "/publishers", admin, json={
        "slug": "notes-studio", "name": "Notes Studio", "owner_email": "dev@example.org"})
    assert publisher.status_code == 201, publisher.text
    reviewer = store.api("POST", "/admin/users", admin, json={
        "email": "reviewer@example.org", "password": PASSWORD, "roles": ["reviewer"]})
    assert reviewer.status_code == 201, reviewer.text
    user = store.api("POST", "/auth/register", json={"email": "user@example.org", "password": PASSWORD})
    assert user.status_code == 201, user.text
    return admin, "notes-studio"


def _manifest_version(package_dir: Path) -> str:
    return str(tomllib.loads((package_dir / "mercato.toml").read_text())["package"]["version"])


def test_a_publisher_ships_a_package_from_the_command_line_and_a_user_downloads_it_verified(
        store: Store, tmp_path: Path) -> None:
    _, publisher = _accounts(store)
    dev = Cli(tmp_path / "dev-config")

    # login: a token for this machine, saved readable only by the owner
    browser = store.token("dev@example.org")  # the developer is also signed in in a browser
    login = dev.ok("login", "--server", store.base, "--email", "dev@example.org", MERCATO_PASSWORD=PASSWORD)
    assert "logged in to" in login.stdout
    assert store.api("GET", "/me", browser).status_code == 200  # logging the CLI in kept the browser signed in
    saved = dev.config_dir / "credentials.json"
    assert saved.stat().st_mode & 0o777 == 0o600
    tokens = store.api("GET", "/me/tokens", store.token("dev@example.org")).json()["items"]
    assert [t["name"] for t in tokens] == [f"mercato-cli@{socket.gethostname()}"[:100]]

    # package init and build: the archive path alone on stdout
    init = dev.ok("package", "init", "hello-notes", "--kind", "app", "--dir", str(tmp_path / "src"))
    package_dir = Path(init.stdout.strip())
    assert package_dir == tmp_path / "src" / "hello-notes" and (package_dir / "mercato.toml").is_file()
    build = dev.ok("package", "build", str(package_dir), "--output-dir", str(tmp_path / "dist"))
    archive = Path(build.stdout.strip())
    assert len(build.stdout.strip().splitlines()) == 1 and archive.is_file() and archive.parent == tmp_path / "dist"
    version = _manifest_version(package_dir)

    # a new package has no listing yet: publish says how to create one, and the CLI does
    missing = _one_line_error(dev("publish", str(archive)))
    assert "listing_not_found" in missing and "mercato listing create" in missing
    created = dev.ok("listing", "create", str(package_dir), "--publisher", publisher, "--name", "Hello Notes")
    assert "created listing hello-notes (app, draft)" in created.stdout
    listing = store.api("GET", "/listings/hello-notes", store.token("dev@example.org")).json()
    assert (listing["name"], listing["publisher"]["slug"]) == ("Hello Notes", publisher)
    assert "slug_taken" in _one_line_error(dev("listing", "create", str(archive), "--publisher", publisher))

    # publish: upload with progress, then submit; the automated checks are reported
    published = dev.ok("publish", str(archive), "--listing", "hello-notes")
    assert f"uploaded hello-notes {version}" in published.stdout
    assert f"submitted hello-notes {version}: status in_review" in published.stdout
    assert "automated checks: risk score" in published.stdout

    status = dev.ok("status", "--listing", "hello-notes")
    assert version in status.stdout and "in_review" in status.stdout

    # before approval the store has not signed the archive: refused unless asked for
    unsigned = dev("download", version, "--listing", "hello-notes", "--output", str(tmp_path / "early.tar.gz"))
    assert "signature_missing" in _one_line_error(unsigned) and not (tmp_path / "early.tar.gz").exists()
    kept = dev.ok("download", version, "--listing", "hello-notes", "--output", str(tmp_path / "early.tar.gz"),
                  "--allow-unsigned")
    assert Path(kept.stdout.strip()).read_bytes() == archive.read_bytes() and "not signed" in kept.stderr
    mine = dev.ok("status", "--publisher", publisher)
    assert "hello-notes" in mine.stdout

    # the reviewer claims and approves through the API
    reviewer = store.token("reviewer@example.org")
    tasks = store.api("GET", "/review/tasks", reviewer)
    assert tasks.status_code == 200, tasks.text
    task = next(t for t in tasks.json()["items"]
                if t["listing"]["slug"] == "hello-notes" and t["version"]["version"] == version)
    assert store.api("POST", f"/review/tasks/{task['id']}/claim", reviewer).status_code == 200
    approved = store.api("POST", f"/review/tasks/{task['id']}/approve", reviewer)
    assert approved.status_code == 200, approved.text
    status = dev.ok("status", "--listing", "hello-notes")
    assert "approved" in status.stdout and f"latest version {version}" in status.stdout

    # a user downloads it; the CLI checks the checksum and the store's signature
    user = Cli(tmp_path / "user-config")
    user.ok("login", "--server", store.base, "--email", "user@example.org", MERCATO_PASSWORD=PASSWORD)
    downloaded = user.ok("download", version, "--listing", "hello-notes", "--output", f"{tmp_path / 'downloads'}/")
    path = Path(downloaded.stdout.strip())
    assert path.parent == tmp_path / "downloads" and path.read_bytes() == archive.read_bytes()
    assert "verified: sha256" in downloaded.stderr and "Ed25519 signature by key" in downloaded.stderr
    named = user.ok("download", version, "--listing", "hello-notes", "--output", str(tmp_path / "hello.tar.gz"))
    assert Path(named.stdout.strip()) == tmp_path / "hello.tar.gz"

    # the same version again is refused, in one line
    again = dev("publish", str(archive), "--listing", "hello-notes")
    assert "version_exists" in _one_line_error(again)

    # a user may not yank; the publisher may
    refused = user("yank", version, "--listing", "hello-notes", "--reason", "not mine")
    assert _one_line_error(refused).startswith("error: ")
    yanked = dev.ok("yank", version, "--listing", "hello-notes", "--reason", "crashes on start")
    assert f"yanked hello-notes {version}: status yanked" in yanked.stdout
    status = dev.ok("status", "--listing", "hello-notes")
    assert "yanked: crashes on start" in status.stdout

    # logging in again replaces the machine's token; logging out revokes it
    dev.ok("login", "--server", store.base, "--email", "dev@example.org", MERCATO_PASSWORD=PASSWORD)
    assert len(store.api("GET", "/me/tokens", store.token("dev@example.org")).json()["items"]) == 1
    assert "logged out" in dev.ok("logout").stdout
    assert store.api("GET", "/me/tokens", store.token("dev@example.org")).json()["items"] == []
    assert not saved.exists()
    assert "run `mercato login --server URL` first" in _one_line_error(dev("status", "--listing", "hello-notes"))


def test_an_invalid_package_is_refused_in_one_line_locally_and_by_the_store(store: Store, tmp_path: Path) -> None:
    _, publisher = _accounts(store)
    dev = Cli(tmp_path / "dev-config")
    dev.ok("login", "--server", store.base, "--email", "dev@example.org", MERCATO_PASSWORD=PASSWORD)
    package_dir = Path(dev.ok("package", "init", "broken-notes", "--dir", str(tmp_path)).stdout.strip())
    manifest = package_dir / "mercato.toml"
    manifest.write_text(manifest.read_text().replace("name =", "nmae =", 1))

    local = _one_line_error(dev("package", "build", str(package_dir)))
    assert local.startswith("error: manifest_invalid: ") and "nmae" in local

    # the same mistake packed by hand reaches the store, which refuses it the same way
    archive = tmp_path / "broken-notes-1.0.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(manifest, arcname="mercato.toml")
    dev_token = store.token("dev@example.org")
    created = store.api("POST", "/listings", dev_token, json={
        "publisher": publisher, "slug": "broken-notes", "name": "Broken Notes", "kind": "app",
        "summary": "Broken.", "description": "Broken.", "category": None, "tags": [],
        "offers": [{"delivery": "digital", "price": {"amount": 0, "currency": "USD"}}]})
    assert created.status_code == 201, created.text
    remote = _one_line_error(dev("publish", str(archive), "--listing", "broken-notes"))
    assert remote.startswith("error: manifest_invalid: ") and "nmae" in remote


def test_status_with_no_server_running_is_one_line(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "config")
    port = free_port()
    result = cli("status", "--listing", "hello-notes", "--server", f"http://127.0.0.1:{port}", "--token", "mct_x")
    assert _one_line_error(result) == f"error: cannot reach http://127.0.0.1:{port}: connection refused"


def test_commands_without_credentials_say_to_log_in(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "empty-config")
    for args in (["status", "--listing", "hello-notes"], ["yank", "1.0.0", "--listing", "x", "--reason", "r"],
                 ["download", "1.0.0", "--listing", "x"]):
        assert "run `mercato login --server URL` first" in _one_line_error(cli(*args))


def test_login_without_a_password_outside_a_terminal_says_how(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "config")
    result = cli("login", "--server", "http://127.0.0.1:9", "--email", "dev@example.org")
    assert "MERCATO_PASSWORD" in _one_line_error(result)


def test_a_server_url_without_a_scheme_is_one_line(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "config")
    result = cli("status", "--listing", "x", "--server", "localhost:8000", "--token", "mct_x")
    assert "give one like http://localhost:8000" in _one_line_error(result)


def test_wrong_password_is_one_line(store: Store, tmp_path: Path) -> None:
    registered = store.api("POST", "/auth/register", json={"email": "dev@example.org", "password": PASSWORD})
    assert registered.status_code == 201
    cli = Cli(tmp_path / "config")
    result = cli("login", "--server", store.base, "--email", "dev@example.org",
                 MERCATO_PASSWORD="not the right password")
    assert _one_line_error(result).startswith("error: invalid_credentials: ")
    assert not (cli.config_dir / "credentials.json").exists()


def test_publishing_a_missing_file_is_one_line(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "config")
    result = cli("publish", str(tmp_path / "nope.tar.gz"), "--listing", "x")
    assert _one_line_error(result) == f"error: {tmp_path / 'nope.tar.gz'}: no such file"
