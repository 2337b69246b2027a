"""The agent loop against an in-test store speaking the agent protocol (``/agent/*``).

Every body the agent sends is validated with the server's own request models
(:mod:`mercato.installs.schemas`), and every task the fake store hands out with its
response model, so the two sides cannot drift apart unnoticed.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mercato.agent.backoff import Backoff
from mercato.agent.client import AgentClient
from mercato.agent.files import FilesDriver
from mercato.agent.progress import TerminalProgress
from mercato.agent.runner import Agent, TokenRefused
from mercato.installs.schemas import AgentTask, Heartbeat, ProgressReport, ResultReport
from tests.agent.support import KEYS, PUBLIC_KEYS, demo_archive, licence_for

SERVER = "http://store.test"


class _Cut(httpx.AsyncByteStream):
    """A body that stops after ``limit`` bytes with a network error, like a dropped connection."""

    def __init__(self, data: bytes, limit: int) -> None:
        self.data, self.limit = data, limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data[:self.limit]
        raise httpx.ReadError("connection reset by peer")


class FakeStore:
    def __init__(self) -> None:
        self.tasks: list[dict[str, Any]] = []
        self.in_flight: list[dict[str, Any]] = []
        self.heartbeats: list[dict[str, Any]] = []
        self.progress: list[tuple[str, dict[str, Any]]] = []
        self.results: list[tuple[str, dict[str, Any]]] = []
        self.artifacts: dict[str, bytes] = {}
        self.download_headers: list[dict[str, str]] = []
        self.cut_next_download: int | None = None
        self.canceled: set[str] = set()
        self.cancel_at: int | None = None  # cancel a task when its progress reaches this
        self.unavailable = 0  # answer this many requests with 503 first
        self.token = "mci_good"
        self.on_result: Any = None
        self.on_progress: Any = None

    def add_artifact(self, path: Path, *, tamper: bool = False) -> dict[str, Any]:
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        url = f"/api/v1/artifacts/{digest}"
        self.artifacts[url] = data + b"tampered" if tamper else data
        return {"url": url, "sha256": digest, "size": len(data), "format": "tar.gz",
                "signature": KEYS.sign_artifact(digest), "signature_key_id": KEYS.key_id}

    def task(self, kind: str, installation: dict[str, Any], *, version: str | None = None,
             artifact: dict[str, Any] | None = None, licence: dict[str, Any] | None = None) -> dict[str, Any]:
        body = {"id": str(uuid.uuid4()), "kind": kind, "state": "dispatched", "attempt": 1, "version": version,
                "from_version": installation.get("version"), "deadline_at": None,
                "installation": {"state": "installing", "version": None, "config": {}, **installation},
                "artifact": artifact, "licence": licence}
        AgentTask.model_validate(body)  # the server's own response model
        self.tasks.append(body)
        return body

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return httpx.Response(401, json={"code": "unauthenticated", "detail": "Bad token."})
        if self.unavailable:
            self.unavailable -= 1
            return httpx.Response(503, json={"code": "service_unavailable", "detail": "Try later."})
        path = request.url.path
        if path == "/api/v1/agent/heartbeat":
            body = json.loads(request.content)
            Heartbeat.model_validate(body)
            self.heartbeats.append(body)
            return httpx.Response(200, json={"instance_id": str(uuid.uuid4()), "received_at": "2026-11-22T10:00:00Z",
                                             "queued_tasks": len(self.tasks)})
        if path == "/api/v1/agent/tasks" and request.url.params.get("in_flight") == "true":
            items, self.in_flight = self.in_flight, []
            return httpx.Response(200, json={"items": items})
        if path == "/api/v1/agent/tasks":
            items, self.tasks = self.tasks[:1], self.tasks[1:]
            if not items:
                await asyncio.sleep(0.01)
            return httpx.Response(200, json={"items": items})
        if path.endswith("/progress"):
            task_id = path.split("/")[-2]
            body = json.loads(request.content)
            ProgressReport.model_validate(body)
            self.progress.append((task_id, body))
            if self.on_progress:
                self.on_progress()
            if self.cancel_at is not None and body["percent"] >= self.cancel_at:
                self.canceled.add(task_id)
            if task_id in self.canceled:
                return httpx.Response(409, json={"code": "task_canceled", "detail": "Canceled."})
            return httpx.Response(200, json={})
        if path.endswith("/result"):
            body = json.loads(request.content)
            ResultReport.model_validate(body)
            self.results.append((path.split("/")[-2], body))
            if self.on_result:
                self.on_result()
            return httpx.Response(200, json={})
        if path == "/api/v1/keys":
            return httpx.Response(200, json={"keys": [key.model_dump() for key in PUBLIC_KEYS]})
        if path in self.artifacts:
            return self._download(request, self.artifacts[path])
        return httpx.Response(404, json={"code": "not_found", "detail": path})

    def _download(self, request: httpx.Request, data: bytes) -> httpx.Response:
        self.download_headers.append(dict(request.headers))
        digest = hashlib.sha256(data.removesuffix(b"tampered")).hexdigest()
        headers = {"ETag": f'"{digest}"', "X-Checksum-SHA256": digest, "Accept-Ranges": "bytes",
                   "X-Signature-Ed25519": KEYS.sign_artifact(digest), "X-Signature-Key-Id": KEYS.key_id}
        start = 0
        wanted = request.headers.get("range")
        if wanted and request.headers.get("if-range") == headers["ETag"]:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        status = 206 if start else 200
        if self.cut_next_download is not None:
            limit, self.cut_next_download = self.cut_next_download, None
            return httpx.Response(status, headers=headers, stream=_Cut(body, limit))
        return httpx.Response(status, headers=headers, content=body)


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
async def agent(store: FakeStore, tmp_path: Path) -> AsyncIterator[Agent]:
    client = AgentClient(SERVER, store.token, transport=httpx.MockTransport(store.handle))
    worker = Agent(client, FilesDriver(tmp_path / "root"), heartbeat_seconds=60, poll_wait=1,
                   terminal=TerminalProgress(io.StringIO()), backoff=Backoff(base=0.001, cap=0.01))
    yield worker
    await client.close()


def installation(name: str = "hello-notes", *, slug: str = "hello-notes", ids: tuple[str, str] | None = None,
                 **extra: Any) -> dict[str, Any]:
    installation_id, listing_id = ids or (str(uuid.uuid4()), str(uuid.uuid4()))
    return {"id": installation_id, "name": name, "listing_id": listing_id, "listing_slug": slug, **extra}


async def test_install_task_downloads_verifies_installs_and_reports(agent: Agent, store: FakeStore,
                                                                    tmp_path: Path) -> None:
    where = installation(config={"workspace": "home"})
    task = store.task("install", where, version="1.0.0", artifact=store.add_artifact(demo_archive(tmp_path)),
                      licence=licence_for(where["listing_id"]))

    report = await agent.handle(store.tasks.pop())

    assert report["outcome"] == "succeeded", report
    assert store.results == [(task["id"], report)]
    percents = [body["percent"] for task_id, body in store.progress if task_id == task["id"]]
    assert percents == sorted(percents) and percents[-1] == 100
    assert {body["message"] for _, body in store.progress} >= {"downloading", "verifying", "unpacking", "installed"}
    current = agent.driver.root / "hello-notes" / "current"
    assert os.readlink(current) == "versions/1.0.0"
    assert (current / "bin" / "hello-notes").is_file()
    assert list(agent.driver.downloads.iterdir()) == []  # the archive is not kept once installed


async def test_heartbeat_reports_inventory_and_resources(agent: Agent, store: FakeStore, tmp_path: Path) -> None:
    where = installation()
    store.task("install", where, version="1.0.0", artifact=store.add_artifact(demo_archive(tmp_path)))
    await agent.handle(store.tasks.pop())
    agent.driver.set_state("hello-notes", "stopped")

    await agent.heartbeat()

    body = store.heartbeats[-1]
    assert body["inventory"] == [{"installation_id": where["id"], "listing_id": where["listing_id"],
                                  "version": "1.0.0", "state": "stopped"}]
    assert body["resources"]["disk_mb"] > 0 and body["host_version"] == "2.0.0"


async def test_a_download_cut_short_resumes_with_a_range_request(agent: Agent, store: FakeStore,
                                                                 tmp_path: Path) -> None:
    artifact = store.add_artifact(demo_archive(tmp_path))
    store.task("install", installation(), version="1.0.0", artifact=artifact)
    store.cut_next_download = 300

    report = await agent.handle(store.tasks.pop())

    assert report["outcome"] == "succeeded", report
    first, second = store.download_headers
    assert "range" not in first
    assert second["range"] == "bytes=300-" and second["if-range"] == f'"{artifact["sha256"]}"'


async def test_a_kept_download_is_reused_and_a_damaged_one_fetched_again(agent: Agent, store: FakeStore,
                                                                        tmp_path: Path) -> None:
    path = demo_archive(tmp_path)
    artifact = store.add_artifact(path)
    downloads = agent.driver.downloads
    meta = json.dumps({"declared_sha256": artifact["sha256"], "signature": None, "key_id": None})
    (downloads / f"{artifact['sha256']}.archive").write_bytes(path.read_bytes())  # left by a killed agent
    (downloads / f"{artifact['sha256']}.json").write_text(meta)
    store.task("install", installation(), version="1.0.0", artifact=artifact)
    assert (await agent.handle(store.tasks.pop()))["outcome"] == "succeeded"
    assert store.download_headers == []

    (downloads / f"{artifact['sha256']}.archive").write_bytes(b"damaged on disk")
    (downloads / f"{artifact['sha256']}.json").write_text(meta)
    store.task("install", installation("second-copy"), version="1.0.0", artifact=artifact)
    assert (await agent.handle(store.tasks.pop()))["outcome"] == "succeeded"
    assert len(store.download_headers) == 1


async def test_a_tampered_artifact_fails_and_the_installed_version_stays(agent: Agent, store: FakeStore,
                                                                         tmp_path: Path) -> None:
    where = installation()
    store.task("install", where, version="1.0.0", artifact=store.add_artifact(demo_archive(tmp_path)))
    await agent.handle(store.tasks.pop())
    store.task("upgrade", where, version="1.1.0",
               artifact=store.add_artifact(demo_archive(tmp_path, version="1.1.0"), tamper=True))

    report = await agent.handle(store.tasks.pop())

    assert report["outcome"] == "failed" and report["message"].startswith("checksum_mismatch")
    assert os.readlink(agent.driver.root / "hello-notes" / "current") == "versions/1.0.0"
    assert list(agent.driver.downloads.iterdir()) == []  # bad bytes are never resumed from


async def test_a_bad_signature_fails_before_anything_is_unpacked(agent: Agent, store: FakeStore,
                                                                 tmp_path: Path) -> None:
    artifact = store.add_artifact(demo_archive(tmp_path))
    store.task("install", installation(), version="1.0.0", artifact=artifact)
    original = store._download

    def unsigned(request: httpx.Request, data: bytes) -> httpx.Response:
        response = original(request, data)
        response.headers["X-Signature-Ed25519"] = KEYS.sign_artifact("0" * 64)
        return response

    store._download = unsigned  # type: ignore[method-assign]
    report = await agent.handle(store.tasks.pop())

    assert report["outcome"] == "failed" and report["message"].startswith("signature_invalid")
    assert not (agent.driver.root / "hello-notes").exists()


async def test_a_licence_for_another_listing_fails_the_install(agent: Agent, store: FakeStore,
                                                               tmp_path: Path) -> None:
    store.task("install", installation(), version="1.0.0", artifact=store.add_artifact(demo_archive(tmp_path)),
               licence=licence_for(str(uuid.uuid4())))

    report = await agent.handle(store.tasks.pop())

    assert report["outcome"] == "failed" and report["message"].startswith("licence_invalid")
    assert not (agent.driver.root / "hello-notes").exists()


async def test_a_task_canceled_on_the_store_stops_before_the_switch(agent: Agent, store: FakeStore,
                                                                    tmp_path: Path) -> None:
    task = store.task("install", installation(), version="1.0.0", artifact=store.add_artifact(demo_archive(tmp_path)))
    store.canceled.add(task["id"])

    report = await agent.handle(store.tasks.pop())

    assert report["outcome"] == "failed" and report["message"].startswith("canceled")
    assert not (agent.driver.root / "hello-notes").exists()


async def test_a_cancel_learned_after_the_switch_rolls_the_upgrade_back(agent: Agent, store: FakeStore,
                                                                        tmp_path: Path) -> None:
    where = installation()
    store.task("install", where, version="1.0.0", artifact=store.add_artifact(demo_archive(tmp_path)))
    await agent.handle(store.tasks.pop())
    store.task("upgrade", where, version="1.1.0", artifact=store.add_artifact(demo_archive(tmp_path, version="1.1.0")))
    store.cancel_at = 100

    report = await agent.handle(store.tasks.pop())

    assert report["outcome"] == "failed" and "rolled back" in report["message"]
    assert os.readlink(agent.driver.root / "hello-notes" / "current") == "versions/1.0.0"


async def test_stop_resume_clone_and_uninstall_tasks(agent: Agent, store: FakeStore, tmp_path: Path) -> None:
    where = installation()
    artifact = store.add_artifact(demo_archive(tmp_path))
    for kind in ("install", "stop", "resume"):
        store.task(kind, where, version="1.0.0" if kind == "install" else None,
                   artifact=artifact if kind == "install" else None)
        assert (await agent.handle(store.tasks.pop()))["outcome"] == "succeeded"
    clone = installation("hello-notes-copy", ids=(str(uuid.uuid4()), where["listing_id"]))
    store.task("install", clone, version="1.0.0", artifact=artifact)
    assert (await agent.handle(store.tasks.pop()))["outcome"] == "succeeded"
    store.task("uninstall", where)
    assert (await agent.handle(store.tasks.pop()))["outcome"] == "succeeded"

    assert [i.name for i in agent.driver.installations()] == ["hello-notes-copy"]
    assert not (agent.driver.root / "hello-notes").exists()


async def test_a_recorded_result_is_reported_again_not_redone(agent: Agent, store: FakeStore,
                                                              tmp_path: Path) -> None:
    task = store.task("install", installation(), version="1.0.0", artifact=store.add_artifact(demo_archive(tmp_path)))
    first = await agent.handle(dict(task))
    store.progress.clear()
    store.download_headers.clear()

    again = await agent.handle(dict(task))  # handed out again (the first result was lost on the way)

    assert again == first
    assert store.progress == [] and store.download_headers == []
    assert [r for _, r in store.results] == [first, first]


async def test_a_task_under_way_when_the_agent_is_stopped_is_finished_and_reported(agent: Agent, store: FakeStore,
                                                                                  tmp_path: Path) -> None:
    task = store.task("install", installation(), version="1.0.0", artifact=store.add_artifact(demo_archive(tmp_path)))
    store.on_progress = agent.stop  # SIGTERM arrives while it downloads

    report = await agent.handle(store.tasks.pop())

    assert report["outcome"] == "succeeded"
    assert store.results == [(task["id"], report)]
    assert json.loads(next(agent.driver.journal.glob(f"{task['id']}.*")).read_text())["reported"]


async def test_a_restarted_agent_reports_a_result_it_could_not_send(store: FakeStore, tmp_path: Path) -> None:
    root = tmp_path / "root"
    store.task("stop", installation())
    task_id = store.tasks[0]["id"]
    (FilesDriver(root).journal / f"{task_id}.1.json").write_text(json.dumps(
        {"task_id": task_id, "attempt": 1, "result": {"outcome": "failed", "message": "not_installed: x"},
         "reported": False}))
    store.tasks.clear()
    client = AgentClient(SERVER, store.token, transport=httpx.MockTransport(store.handle))
    worker = Agent(client, FilesDriver(root), poll_wait=1, terminal=TerminalProgress(io.StringIO()),
                   backoff=Backoff(base=0.001, cap=0.01))
    store.unavailable = 2  # the store is down for a moment: the agent backs off and retries
    store.on_result = worker.stop

    await asyncio.wait_for(worker.run(), 30)
    await client.close()

    assert store.results == [(task_id, {"outcome": "failed", "message": "not_installed: x"})]
    assert json.loads((root / ".mercato-agent" / "journal" / f"{task_id}.1.json").read_text())["reported"]


async def test_the_loop_resumes_in_flight_tasks_then_takes_new_ones(store: FakeStore, tmp_path: Path) -> None:
    where = installation()
    store.task("install", where, version="1.0.0", artifact=store.add_artifact(demo_archive(tmp_path)))
    store.in_flight = [store.tasks.pop()]  # handed out before the agent restarted
    store.task("stop", where)
    client = AgentClient(SERVER, store.token, transport=httpx.MockTransport(store.handle))
    worker = Agent(client, FilesDriver(tmp_path / "root"), poll_wait=1, terminal=TerminalProgress(io.StringIO()),
                   backoff=Backoff(base=0.001, cap=0.01))
    store.on_result = lambda: worker.stop() if len(store.results) == 2 else None

    await asyncio.wait_for(worker.run(), 30)
    await client.close()

    assert [r["outcome"] for _, r in store.results] == ["succeeded", "succeeded"]
    assert worker.driver.get("hello-notes").state == "stopped"
    assert store.heartbeats, "the agent heartbeats when it starts"


async def test_a_refused_token_stops_the_agent(store: FakeStore, tmp_path: Path) -> None:
    client = AgentClient(SERVER, "mci_wrong", transport=httpx.MockTransport(store.handle))
    worker = Agent(client, FilesDriver(tmp_path / "root"), terminal=TerminalProgress(io.StringIO()))
    with pytest.raises(TokenRefused):
        await asyncio.wait_for(worker.run(), 30)
    await client.close()


def test_download_urls_always_go_to_the_configured_store() -> None:
    client = AgentClient(SERVER, "mci_x")
    assert client.artifact_url("/api/v1/x/download?a=1") == f"{SERVER}/api/v1/x/download?a=1"
    assert client.artifact_url("agent/tasks/1/artifact") == f"{SERVER}/api/v1/agent/tasks/1/artifact"
    # the token never leaves for another host, whatever the task says
    assert client.artifact_url("https://elsewhere.test/steal") == f"{SERVER}/steal"
    prefixed = AgentClient(f"{SERVER}/shop", "mci_x")
    assert prefixed.artifact_url(f"{SERVER}/shop/api/v1/a") == f"{SERVER}/shop/api/v1/a"


def test_backoff_grows_exponentially_up_to_its_cap_with_jitter() -> None:
    import random

    backoff = Backoff(base=1, cap=8, rng=random.Random(3))
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [1, 2, 4, 8, 8, 8, 8, 8]
    assert all(c / 10 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == len(delays)  # jittered, not a fixed schedule
    backoff.reset()
    assert backoff.next_delay() <= 1


def test_the_terminal_bar_writes_a_line_per_stage_and_quarter_in_a_log() -> None:
    out = io.StringIO()
    bar = TerminalProgress(out)
    bar.start("install hello-notes 1.0.0")
    for percent in range(0, 71, 5):
        bar.update(percent, "downloading")
    bar.update(75, "unpacking")
    bar.finish("done")
    lines = out.getvalue().splitlines()
    assert lines[0] == "install hello-notes 1.0.0: started"
    assert [line.split("] ")[1].split("%")[0].strip() for line in lines[1:-1]] == ["0", "25", "50", "75"]
    assert lines[1].startswith("[........................]") and lines[-2].endswith("unpacking")
    assert lines[-1] == "install hello-notes 1.0.0: done"


async def test_the_agent_says_when_it_reconnects_after_the_store_was_down(store: FakeStore, tmp_path: Path) -> None:
    client = AgentClient(SERVER, store.token, transport=httpx.MockTransport(store.handle))
    output = io.StringIO()
    worker = Agent(client, FilesDriver(tmp_path / "root"), poll_wait=1, terminal=TerminalProgress(output),
                   backoff=Backoff(base=0.001, cap=0.01))
    store.unavailable = 3  # the first heartbeat fails three times, then the store answers
    store.on_result = worker.stop
    store.task("stop", installation())

    await asyncio.wait_for(worker.run(), 30)
    await client.close()

    lines = output.getvalue().splitlines()
    failed = [n for n, line in enumerate(lines) if "failed" in line and "retrying" in line]
    back = [n for n, line in enumerate(lines) if "reconnected to the store" in line]
    assert len(failed) == 3 and len(back) == 1, lines
    assert back[0] > failed[-1] and "after 3 failed attempts" in lines[back[0]]
