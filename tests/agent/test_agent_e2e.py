"""End to end: ``mercato serve`` and ``mercato agent`` as real processes, installing the demo
catalog's real Hello Notes packages into a temporary directory, checked on disk at each step."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mercato.agent.resources import current_platform
from mercato.app.runtime import Runtime
from mercato.config import Settings
from mercato.demo import DEMO_PASSWORD, load_demo
from mercato.demo import catalog as demo_catalog
from tests.cli.servers import MERCATO, clean_env, serving
from tests.support.backends import fresh_database

TIMEOUT = 60.0
V1 = "/api/v1"


@dataclass
class Store:
    """The store as the demo user sees it, with an instance registered for this test."""

    base: str
    data_dir: Path
    headers: dict[str, str]
    listing_id: str
    instance_id: str = ""
    token: str = ""

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.base}{V1}{path}", headers=self.headers, timeout=TIMEOUT, **kwargs)

    def task(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Ask for an operation and wait (``?wait=``) until its task has finished."""
        response = self.call(method, path, params={"wait": 30}, json=body)
        assert response.status_code in (200, 202), response.text
        task = response.json()
        deadline = time.monotonic() + TIMEOUT
        while task["state"] not in ("succeeded", "failed", "canceled"):
            assert time.monotonic() < deadline, task
            task = self.call("GET", f"/tasks/{task['id']}", params={"wait": 10}).json()
        return task

    def installation(self, installation_id: str) -> dict[str, Any]:
        return self.call("GET", f"/installations/{installation_id}").json()

    def installations(self) -> list[dict[str, Any]]:
        return self.call("GET", f"/instances/{self.instance_id}/installations").json()["items"]

    def tasks(self, state: str) -> list[dict[str, Any]]:
        return self.call("GET", "/tasks", params={"instance_id": self.instance_id, "state": state}).json()["items"]

    def artifact_path(self, version: str) -> Path:
        sha = self.call("GET", f"/listings/hello-notes/versions/{version}").json()["sha256"]
        return self.data_dir / "artifacts" / sha[:2] / sha[2:4] / sha


@dataclass(frozen=True)
class Server:
    base: str
    data_dir: Path


async def _seed(settings: Settings) -> None:
    runtime = Runtime.from_settings(settings)
    try:
        await load_demo(runtime)
    finally:
        await runtime.close()


@pytest.fixture(scope="module")
def server(database_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ``mercato serve`` for the module, holding the demo accounts and the demo Hello Notes
    (1.0.0, 1.1.0 and 1.2.0, all approved); each test registers an instance of its own."""
    directory = tmp_path_factory.mktemp("agent-e2e")
    hello = next(item for item in demo_catalog._listings() if item.slug == "hello-notes")
    with fresh_database(database_template, directory) as database_url, pytest.MonkeyPatch.context() as patch:
        patch.setattr(demo_catalog, "_listings", lambda: [hello])
        asyncio.run(_seed(Settings(data_dir=directory, database_url=database_url, testing=True)))
        # Status correction compares every second (idle installations only: tasks in flight
        # and records newer than the last report are left alone, so the other tests are not
        # disturbed by it).
        env = clean_env(MERCATO_DATA_DIR=str(directory), MERCATO_DATABASE_URL=database_url, MERCATO_TESTING="1",
                        MERCATO_INSTALLS_STATUS_SWEEP_SECONDS="1")
        with serving(env=env, log_path=directory / "serve.log") as base:
            yield Server(base=base, data_dir=directory)


@pytest.fixture
def store(server: Server) -> Store:
    """The demo user, signed in, with a new instance."""
    login = httpx.post(f"{server.base}{V1}/auth/login", json={"email": "user@mercato.test", "password": DEMO_PASSWORD},
                       timeout=TIMEOUT)
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    listing = httpx.get(f"{server.base}{V1}/listings/hello-notes", timeout=TIMEOUT).json()
    store = Store(base=server.base, data_dir=server.data_dir, headers=headers, listing_id=listing["id"])
    created = store.call("POST", "/instances", json={"name": "test box"})
    assert created.status_code == 201, created.text
    store.instance_id, store.token = created.json()["id"], created.json()["token"]
    return store


@contextmanager
def agent(store: Store, root: Path, log: Path, *, failpoints: str = "") -> Iterator[subprocess.Popen[str]]:
    """``mercato agent`` for the store's instance; stopped with SIGTERM at the end (if still running)."""
    env = clean_env(**({"MERCATO_FAILPOINTS": failpoints} if failpoints else {}))
    with log.open("a") as out:
        process = subprocess.Popen(
            [*MERCATO, "agent", "--server", store.base, "--token", store.token, "--root", str(root),
             "--heartbeat", "1", "--poll-wait", "2"],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise AssertionError(f"the agent did not stop on SIGTERM\n{log.read_text()[-3000:]}") from None


def wait_for(condition: Callable[[], Any], what: str, log: Path | None = None) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n" + (log.read_text()[-3000:] if log else "")
        time.sleep(0.1)
    return value


def reported(store: Store) -> bool:
    return store.call("GET", f"/instances/{store.instance_id}").json().get("reported_at") is not None


def current(root: Path, name: str = "hello-notes") -> str | None:
    try:
        return os.readlink(root / name / "current")
    except OSError:
        return None


def entry_text(root: Path, name: str = "hello-notes") -> str:
    return (root / name / "current" / "bin" / "hello-notes").read_text()


def versions(root: Path, name: str = "hello-notes") -> list[str]:
    return sorted(p.name for p in (root / name / "versions").iterdir())


def state(root: Path, name: str = "hello-notes") -> str:
    import json

    return json.loads((root / name / "installation.json").read_text())["state"]


def test_install_upgrade_stop_resume_clone_uninstall(store: Store, tmp_path: Path) -> None:
    root, log = tmp_path / "apps", tmp_path / "agent.log"
    with agent(store, root, log):
        wait_for(lambda: reported(store), "the first heartbeat", log)

        task = store.task("POST", f"/instances/{store.instance_id}/installations",
                          {"listing_id": store.listing_id, "version": "1.0.0"})
        assert task["state"] == "succeeded", (task, log.read_text()[-3000:])
        assert "checksum, signature and licence verified" in task["message"]
        assert current(root) == "versions/1.0.0"
        assert entry_text(root) == "#!/bin/sh\necho 'Hello Notes 1.0.0'\n"
        installation_id = task["installation_id"]
        assert store.installation(installation_id)["state"] == "installed"

        task = store.task("POST", f"/installations/{installation_id}/upgrade", {"version": "1.1.0"})
        assert task["state"] == "succeeded", task
        assert current(root) == "versions/1.1.0" and versions(root) == ["1.0.0", "1.1.0"]
        assert entry_text(root) == "#!/bin/sh\necho 'Hello Notes 1.1.0'\n"
        assert store.installation(installation_id)["version"] == "1.1.0"

        assert store.task("POST", f"/installations/{installation_id}/stop")["state"] == "succeeded"
        assert state(root) == "stopped" and store.installation(installation_id)["state"] == "stopped"
        assert store.task("POST", f"/installations/{installation_id}/resume")["state"] == "succeeded"
        assert state(root) == "running" and store.installation(installation_id)["state"] == "installed"

        task = store.task("POST", f"/installations/{installation_id}/clone", {"name": "hello-notes-copy"})
        assert task["state"] == "succeeded", task
        assert current(root, "hello-notes-copy") == "versions/1.1.0"
        assert entry_text(root, "hello-notes-copy") == entry_text(root)
        assert current(root) == "versions/1.1.0"  # the original is untouched

        assert store.task("POST", f"/installations/{installation_id}/uninstall")["state"] == "succeeded"
        assert not (root / "hello-notes").exists()
        assert (root / "hello-notes-copy" / "current").is_dir()
        assert sorted(i["name"] for i in store.installations()) == ["hello-notes-copy"]

        # what the agent reports about the instance is what requirements are checked against
        instance = store.call("GET", f"/instances/{store.instance_id}").json()
        assert instance["platform"] == current_platform() and instance["host_version"] == "2.0.0"
        assert instance["resources"]["disk_mb"] > 0


def test_an_upgrade_that_fails_verification_leaves_the_previous_version_current(store: Store,
                                                                                 tmp_path: Path) -> None:
    root, log = tmp_path / "apps", tmp_path / "agent.log"
    stored = store.artifact_path("1.2.0")
    original = stored.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0xFF  # one flipped byte in the store's copy of the archive
    with agent(store, root, log):
        wait_for(lambda: reported(store), "the first heartbeat", log)
        task = store.task("POST", f"/instances/{store.instance_id}/installations",
                          {"listing_id": store.listing_id, "version": "1.1.0"})
        assert task["state"] == "succeeded", task
        installation_id = task["installation_id"]

        stored.write_bytes(bytes(damaged))
        try:
            task = store.task("POST", f"/installations/{installation_id}/upgrade", {"version": "1.2.0"})
        finally:
            stored.write_bytes(original)

        assert task["state"] == "failed" and task["message"].startswith("checksum_mismatch"), task
        assert current(root) == "versions/1.1.0" and versions(root) == ["1.1.0"]
        assert entry_text(root) == "#!/bin/sh\necho 'Hello Notes 1.1.0'\n"
        assert not list((root / "hello-notes").glob(".staging-*"))
        installation = store.installation(installation_id)
        assert (installation["state"], installation["version"]) == ("failed", "1.1.0")

        # once the store's copy is repaired, a retry of the same task upgrades it
        assert store.call("POST", f"/tasks/{task['id']}/retry").status_code == 200
        task = store.task("GET", f"/tasks/{task['id']}")
        assert (task["state"], task["attempt"]) == ("succeeded", 2), task
        assert current(root) == "versions/1.2.0" and versions(root) == ["1.1.0", "1.2.0"]


def kill_when(process: subprocess.Popen[str], condition: Callable[[], Any], what: str, log: Path) -> None:
    wait_for(condition, what, log)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def staged(root: Path) -> list[Path]:
    return list((root / "hello-notes").glob(".staging-*")) if (root / "hello-notes").exists() else []


@pytest.mark.slow
def test_agent_killed_mid_task_finishes_it_exactly_once_after_restart(store: Store, tmp_path: Path) -> None:
    root, log = tmp_path / "apps", tmp_path / "agent.log"
    # 1. killed (SIGKILL) with the new version unpacked in its staging folder, before the switch
    with agent(store, root, log, failpoints="agent.after_unpack=sleep:600000") as first:
        wait_for(lambda: reported(store), "the first heartbeat", log)
        created = store.call("POST", f"/instances/{store.instance_id}/installations",
                             json={"listing_id": store.listing_id, "version": "1.0.0"})
        assert created.status_code == 202, created.text
        install_id = created.json()["id"]
        kill_when(first, lambda: staged(root), "the unpack", log)
    assert staged(root) and current(root) is None, "a half-written version must never be current"
    assert store.call("GET", f"/tasks/{install_id}").json()["state"] == "running"

    with agent(store, root, log):
        task = store.task("GET", f"/tasks/{install_id}")
    assert (task["state"], task["attempt"]) == ("succeeded", 1), (task, log.read_text()[-3000:])
    assert current(root) == "versions/1.0.0" and versions(root) == ["1.0.0"] and not staged(root)
    assert entry_text(root) == "#!/bin/sh\necho 'Hello Notes 1.0.0'\n"

    # 2. killed after switching to the new version, before reporting it
    with agent(store, root, log, failpoints="agent.before_result=sleep:600000") as second:
        created = store.call("POST", f"/installations/{task['installation_id']}/upgrade", json={"version": "1.1.0"})
        assert created.status_code == 202, created.text
        upgrade_id = created.json()["id"]
        kill_when(second, lambda: current(root) == "versions/1.1.0", "the switch", log)
    assert store.call("GET", f"/tasks/{upgrade_id}").json()["state"] == "running"

    with agent(store, root, log):
        task = store.task("GET", f"/tasks/{upgrade_id}")
    assert (task["state"], task["attempt"]) == ("succeeded", 1), (task, log.read_text()[-3000:])
    assert current(root) == "versions/1.1.0" and versions(root) == ["1.0.0", "1.1.0"]
    assert sorted(t["id"] for t in store.tasks("succeeded")) == sorted([install_id, upgrade_id])
    assert store.installation(task["installation_id"])["version"] == "1.1.0"


def test_a_refused_token_stops_the_agent_with_one_error_line(server: Server, tmp_path: Path) -> None:
    result = subprocess.run(
        [*MERCATO, "agent", "--server", server.base, "--token", "mci_not-a-real-token", "--root", str(tmp_path)],
        check=False, env=clean_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "refused the instance token" in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_a_poll_whose_agent_hung_up_claims_nothing(store: Store, tmp_path: Path) -> None:
    """A long poll outlives its client on the server; it must not hand a task to nobody (the
    task would sit dispatched until its deadline). The next agent to poll gets it."""
    root, log = tmp_path / "apps", tmp_path / "agent.log"
    with agent(store, root, log) as process:
        wait_for(lambda: reported(store), "the first heartbeat", log)
        process.terminate()
        assert process.wait(timeout=30) == 0, log.read_text()[-3000:]
    with pytest.raises(httpx.ReadTimeout):  # hang up one second into a 20-second poll
        httpx.get(f"{store.base}{V1}/agent/tasks", params={"wait": 20},
                  headers={"Authorization": f"Bearer {store.token}"}, timeout=1.0)
    queued = store.call("POST", f"/instances/{store.instance_id}/installations",
                        json={"listing_id": store.listing_id, "version": "1.0.0"})
    assert queued.status_code in (200, 202), queued.text
    time.sleep(3)  # the abandoned poll checks for work every half second
    assert store.call("GET", f"/tasks/{queued.json()['id']}").json()["state"] == "queued"
    with agent(store, root, log):
        task = store.task("GET", f"/tasks/{queued.json()['id']}")
    assert task["state"] == "succeeded", (task, log.read_text()[-3000:])
    assert current(root) == "versions/1.0.0"


def test_status_correction_notices_a_deleted_install_directory(store: Store, tmp_path: Path) -> None:
    """I5: someone removes the app's directory by hand; the agent's next inventory lacks it
    and status correction makes the record say so (``status.corrected``, old and new)."""
    root, log = tmp_path / "apps", tmp_path / "agent.log"
    with agent(store, root, log):
        wait_for(lambda: reported(store), "the first heartbeat", log)
        task = store.task("POST", f"/instances/{store.instance_id}/installations",
                          {"listing_id": store.listing_id, "version": "1.0.0"})
        assert task["state"] == "succeeded", (task, log.read_text()[-3000:])
        installation_id = task["installation_id"]
        shutil.rmtree(root / "hello-notes")
        corrected = wait_for(lambda: (record := store.installation(installation_id))["state"] == "uninstalled"
                             and record, "status correction", log)
        assert corrected["version"] is None
        history = wait_for(lambda: store.call("GET", "/me/history", params={"action": "status.corrected"}
                                              ).json()["items"], "the correction in the history", log)
        assert len(history) == 1, history
