"""The agent loop: heartbeat with inventory, long-poll for tasks, carry them out, report.

One task runs at a time; heartbeats go on beside it. A task's result is written to the
journal (``ROOT/.mercato-agent/journal``) before it is reported, so an agent killed after
finishing but before reporting reports the same result after a restart instead of doing
the work twice; a task handed out again after a crash mid-way is carried out again, and
every step is idempotent (an archive already current is not installed twice, a removed
installation stays removed). Network failures and 5xx answers are retried with
exponential backoff and jitter; a refused token stops the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar

from mercato.agent import verify
from mercato.agent.client import AgentClient, Downloaded
from mercato.agent.errors import (
    AgentError,
    Canceled,
    ChecksumMismatch,
    DownloadFailed,
    InstallFailed,
    InsufficientDisk,
    InvalidTask,
    NotInstalled,
)
from mercato.agent.files import (
    Artifact,
    FilesDriver,
    Installation,
    check_name,
    write_json_atomic,
)
from mercato.agent.progress import TerminalProgress, human_bytes
from mercato.agent.resources import HOST_VERSION, platform_for_store, resources
from mercato.client.errors import ApiError, ClientError
from mercato.client.schemas import PublicKey
from mercato.kit.failpoints import failpoint

log = logging.getLogger("mercato.agent")

T = TypeVar("T")

POLL_WAIT = 25.0
HEARTBEAT_SECONDS = 15.0
JOURNAL_KEEP = 500


class TokenRefused(Exception):
    """The store refused the instance token (401/403): the agent cannot go on."""


class _Stopped(Exception):
    """The agent was stopped while waiting for the store."""


@dataclass
class Backoff:
    """Exponential backoff with jitter: the n-th wait is uniform in [c/10, c], c = min(cap, base·2ⁿ)."""

    base: float = 0.5
    cap: float = 30.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * 2 ** self.attempt)
        self.attempt += 1
        return self.rng.uniform(ceiling / 10, ceiling)

    def reset(self) -> None:
        self.attempt = 0


def _transient(error: Exception) -> bool:
    if isinstance(error, ApiError):
        return error.status >= 500 or error.status in (408, 425, 429)
    return isinstance(error, ClientError)


class Agent:
    """Runs tasks from one store against one :class:`FilesDriver`."""

    def __init__(self, client: AgentClient, driver: FilesDriver, *, host_version: str = HOST_VERSION,
                 host: str | None = None, heartbeat_seconds: float = HEARTBEAT_SECONDS,
                 poll_wait: float = POLL_WAIT, terminal: TerminalProgress | None = None,
                 public_keys: list[PublicKey] | None = None, backoff: Backoff | None = None) -> None:
        self.client = client
        self.driver = driver
        self.host_version = host_version
        self.host = host
        self.heartbeat_seconds = heartbeat_seconds
        self.poll_wait = poll_wait
        self.terminal = terminal or TerminalProgress()
        self.pinned_keys = public_keys
        self._keys: list[PublicKey] | None = list(public_keys) if public_keys else None
        self.backoff = backoff or Backoff()
        self._stop = asyncio.Event()
        self._inventory_changed = asyncio.Event()
        self._resync = True
        self._fatal: TokenRefused | None = None
        self._failures = 0  # calls to the store failed in a row (heartbeats, polls, reports)

    # -- the loop --

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Until :meth:`stop`: recover the root, report pending results, then heartbeat and work."""
        for line in self.driver.recover():
            self.terminal.note(f"recovered: {line}")
        await self._retrying(self.heartbeat, "heartbeat")
        await self._report_pending()
        beat = asyncio.create_task(self._heartbeats())
        # First (and after any failed poll, whose answer may have been lost on the way), ask
        # for the tasks already handed out to this instance and not finished.
        self._resync = True
        try:
            while not self._stop.is_set():
                in_flight, self._resync = self._resync, False
                tasks = await self._retrying(
                    lambda resync=in_flight: self.client.next_tasks(self.poll_wait, in_flight=resync), "task poll")
                if tasks is None:
                    break
                if in_flight and tasks:
                    self.terminal.note(f"resuming {len(tasks)} task(s) already handed out to this instance")
                for task in tasks:
                    if self._stop.is_set():
                        break
                    await self.handle(task)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        if self._fatal is not None:
            raise self._fatal

    async def _heartbeats(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._inventory_changed.wait(), self.heartbeat_seconds)
            self._inventory_changed.clear()
            try:
                await self.heartbeat()
            except TokenRefused as error:
                self._fatal = error
                self._stop.set()
                return
            except (ClientError, OSError) as error:
                self._failures += 1
                log.warning("heartbeat failed: %s", error)
            else:
                self._reached("heartbeat")

    async def _retrying(self, call: Callable[[], Awaitable[T]], what: str) -> T | None:
        """``call()`` until it succeeds, waiting with backoff between transient failures;
        None as soon as the agent is stopped. 401/403 raise :class:`TokenRefused`."""
        while not self._stop.is_set():
            try:
                value = await self._unless_stopped(call())
            except ApiError as error:
                if error.status in (401, 403):
                    self._stop.set()
                    raise TokenRefused(f"the store refused the instance token ({error}); "
                                       "register the instance again or check --token") from None
                if not _transient(error):
                    raise
                self._wait_note(what, error)
            except ClientError as error:
                self._wait_note(what, error)
            except _Stopped:
                return None
            else:
                self.backoff.reset()
                self._reached(what)
                return value
            delay = self.backoff.next_delay()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
        return None

    async def _unless_stopped(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable``, abandoning it (cancelled) if the agent is stopped first."""
        work = asyncio.ensure_future(awaitable)
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
            raise _Stopped
        return work.result()

    def _wait_note(self, what: str, error: Exception) -> None:
        if what == "task poll":
            self._resync = True
        self._failures += 1
        self.terminal.note(f"{what} failed ({error}); retrying")

    def _reached(self, what: str) -> None:
        """A call to the store succeeded: after failures, say the store is reachable again."""
        if self._failures:
            failed, self._failures = self._failures, 0
            self.terminal.note(f"reconnected to the store ({what} succeeded after {failed} failed "
                               f"attempt{'s' if failed != 1 else ''})")
            log.info("reconnected to the store after %d failed attempts", failed)

    # -- heartbeat --

    def inventory(self) -> list[dict[str, Any]]:
        items = []
        for record in self.driver.installations():
            state = "stopped" if record.state == "stopped" else "installed"
            try:
                self.driver.check_current(record.name, listing_slug=record.listing_slug, version=record.version)
            except InstallFailed:
                state = "failed"
            items.append({"installation_id": record.installation_id, "listing_id": record.listing_id,
                          "version": record.version, "state": state})
        return items

    def heartbeat_body(self) -> dict[str, Any]:
        return {"inventory": self.inventory(), "resources": resources(self.driver.root, host=self.host),
                "platform": platform_for_store(), "host_version": self.host_version}

    async def heartbeat(self) -> dict[str, Any]:
        try:
            return await self.client.heartbeat(self.heartbeat_body())
        except ApiError as error:
            if error.status in (401, 403):
                raise TokenRefused(f"the store refused the instance token ({error})") from None
            raise

    # -- one task --

    async def handle(self, task: dict[str, Any]) -> dict[str, Any]:
        """Carry out one task (or replay its recorded result) and report it; returns the report."""
        entry = self._journal_path(task)
        recorded = _read_json(entry)
        if recorded is not None and "result" in recorded:
            report = recorded["result"]
        else:
            report = await self._execute(task)
            write_json_atomic(entry, {"task_id": task["id"], "attempt": task.get("attempt"), "result": report,
                                      "reported": False, "at": time.time()})
        await failpoint("agent.before_result")
        await self._send_result(entry, task["id"], report)
        self._inventory_changed.set()
        return report

    async def _execute(self, task: dict[str, Any]) -> dict[str, Any]:
        kind = task.get("kind")
        installation = task.get("installation") or {}
        label = f"{kind} {installation.get('name') or installation.get('listing_slug') or '?'}"
        if task.get("version"):
            label += f" {task['version']}"
        self.terminal.start(label)
        try:
            handler = {"install": self._install, "upgrade": self._install, "uninstall": self._uninstall,
                       "stop": self._set_state, "resume": self._set_state}.get(str(kind))
            if handler is None:
                raise InvalidTask(f"this agent cannot carry out {kind!r} tasks")
            with _Reporter(self, str(task["id"])) as reporter:
                message = await handler(task, reporter)
        except AgentError as error:
            self.terminal.finish(f"failed: {error.code}: {error.message}")
            return {"outcome": "failed", "message": f"{error.code}: {error.message}"[:4000]}
        except (OSError, ValueError, KeyError, TypeError) as error:  # a bug or the disk: fail the task, go on
            log.exception("task %s failed unexpectedly", task.get("id"))
            self.terminal.finish(f"failed: agent_error: {error!r}")
            return {"outcome": "failed", "message": f"agent_error: {error!r}"[:4000]}
        self.terminal.finish(f"done: {message}")
        return {"outcome": "succeeded", "message": message[:4000]}

    async def _send_result(self, entry: Path, task_id: str, report: dict[str, Any]) -> None:
        """Report the outcome (retrying; one try when stopping) and mark the journal entry
        reported once the store took it, or refused it for good (404/409: the task was
        canceled, or failed by its deadline). Otherwise it is sent again at the next start."""
        try:
            if self._stop.is_set():
                await self.client.result(task_id, report)
            elif await self._retrying(lambda: self.client.result(task_id, report), "result") is None:
                return
        except ApiError as error:
            if error.status in (401, 403):
                raise TokenRefused(f"the store refused the instance token ({error})") from None
            if _transient(error):
                return
            self.terminal.note(f"the store did not take the result of task {task_id}: {error}")
        except ClientError:
            return
        recorded = _read_json(entry)
        if recorded:
            write_json_atomic(entry, {**recorded, "reported": True})
        self._prune_journal()

    async def _report_pending(self) -> None:
        for entry in sorted(self.driver.journal.glob("*.json")):
            recorded = _read_json(entry)
            if recorded and not recorded.get("reported") and "result" in recorded:
                await self._send_result(entry, str(recorded["task_id"]), recorded["result"])

    def _journal_path(self, task: dict[str, Any]) -> Path:
        task_id = str(task["id"])
        check_name(task_id)  # an id becomes a file name
        return self.driver.journal / f"{task_id}.{int(task.get('attempt') or 1)}.json"

    def _prune_journal(self) -> None:
        entries = sorted(self.driver.journal.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for old in entries[:-JOURNAL_KEEP]:
            old.unlink(missing_ok=True)

    # -- kinds --

    def _local(self, installation: dict[str, Any]) -> Installation | None:
        record = self.driver.by_id(str(installation.get("id")))
        return record

    async def _install(self, task: dict[str, Any], reporter: _Reporter) -> str:
        installation = task.get("installation") or {}
        artifact = task.get("artifact")
        version = task.get("version")
        if not isinstance(artifact, dict) or not version:
            raise InvalidTask(f"the {task.get('kind')} task names no artifact or version")
        slug = installation.get("listing_slug")
        local = self._local(installation)
        if task.get("kind") == "upgrade" and local is None:
            raise NotInstalled(f"installation {installation.get('id')} is not on this instance; install it first")
        name = local.name if local is not None else check_name(installation.get("name") or slug)
        if local is not None and local.version == version and local.sha256 == artifact.get("sha256"):
            await reporter.report(100, "already current")
            return f"{slug} {version} is already current as {name}"
        await reporter.report(0, "downloading")
        archive, downloaded = await self._fetch(artifact, reporter)
        try:
            return await self._verify_and_deploy(task, reporter, archive, downloaded, local=local, name=name)
        except AgentError:
            self._forget_download(str(artifact["sha256"]).lower())  # a new attempt downloads afresh
            raise

    async def _verify_and_deploy(self, task: dict[str, Any], reporter: _Reporter, archive: Path,
                                 downloaded: Downloaded, *, local: Installation | None, name: str) -> str:
        installation, artifact, version = task["installation"], task["artifact"], task["version"]
        installation_id, listing_id = str(installation.get("id")), str(installation.get("listing_id"))
        slug = installation.get("listing_slug")
        await reporter.report(72, "verifying")
        keys = await self._public_keys(downloaded.key_id or artifact.get("signature_key_id"))
        sha256 = str(artifact["sha256"]).lower()  # what the bytes hash to: checked by _fetch
        verify.check_signature(archive, sha256=sha256, size=downloaded.size,
                               signature=downloaded.signature or artifact.get("signature"),
                               key_id=downloaded.key_id or artifact.get("signature_key_id"), keys=keys)
        licence = task.get("licence")
        checked = "checksum and signature"
        if licence is not None:
            verify.check_licence(licence, listing_id=listing_id, keys=keys)
            checked = "checksum, signature and licence"
        inspected = await asyncio.to_thread(verify.check_package, archive, sha256=sha256, listing_slug=slug,
                                            version=str(version))
        free = resources(self.driver.root)["disk_mb"] * 1024 * 1024
        if inspected.unpacked_size > free:
            raise InsufficientDisk(f"{slug} {version} unpacks to {human_bytes(inspected.unpacked_size)}, but only "
                                   f"{human_bytes(free)} is free under {self.driver.root}; nothing was installed")
        await reporter.report(75, "unpacking")
        await failpoint("agent.before_unpack")

        def unpacked(done: int, total: int) -> None:
            reporter.soon(75 + (20 * done // total if total else 20), "unpacking",
                          f"{human_bytes(done)}/{human_bytes(total)}")

        record, changed = await self.driver.deploy(
            Artifact(path=archive, inspected=inspected), name=name, installation_id=installation_id,
            listing_id=listing_id, listing_slug=slug or inspected.manifest.name,
            config=installation.get("config"), progress=unpacked)
        try:
            await reporter.report(100, "installed")
        except Canceled:  # canceled while it was being switched: undo it
            if local is None:
                await self.driver.uninstall(name)
            elif changed:
                self.driver.rollback(name)
            raise Canceled(f"the task was canceled on the store; {slug} {version} was rolled back") from None
        self._forget_download(sha256)
        if not changed:
            return f"{slug} {version} is already current as {name}"
        before = f"; {local.version} kept for rollback" if local is not None and local.version != version else ""
        return f"{slug} {record.version} is current as {record.name} ({checked} verified{before})"

    async def _uninstall(self, task: dict[str, Any], reporter: _Reporter) -> str:
        installation = task.get("installation") or {}
        local = self._local(installation)
        await reporter.report(10, "removing")
        if local is None:
            name = installation.get("name")
            return f"{name or installation.get('id')} was not installed here; nothing to remove"
        await self.driver.uninstall(local.name)
        reporter.committed = True
        await reporter.report(100, "removed")
        return f"{local.name} ({local.listing_slug} {local.version}) was removed"

    async def _set_state(self, task: dict[str, Any], reporter: _Reporter) -> str:
        installation = task.get("installation") or {}
        local = self._local(installation)
        if local is None:
            raise NotInstalled(f"installation {installation.get('id')} is not on this instance")
        state = "stopped" if task.get("kind") == "stop" else "running"
        _, changed = self.driver.set_state(local.name, state)
        try:
            await reporter.report(100, state)
        except Canceled:
            self.driver.set_state(local.name, local.state)
            raise
        return f"{local.name} is {state}" + ("" if changed else " (it already was)")

    # -- downloads and keys --

    async def _fetch(self, artifact: dict[str, Any], reporter: _Reporter) -> tuple[Path, Downloaded]:
        """The archive, downloaded (or resumed) into the agent's downloads folder, its SHA-256
        checked against the task's and the store's."""
        sha256 = str(artifact.get("sha256") or "").lower()
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise InvalidTask("the task's artifact has no valid sha256")
        url = artifact.get("url")
        if not isinstance(url, str) or not url:
            raise InvalidTask("the task's artifact has no url")
        done_path = self.driver.downloads / f"{sha256}.archive"
        meta_path = self.driver.downloads / f"{sha256}.json"
        meta = _read_json(meta_path)
        if done_path.exists() and meta is not None:  # downloaded before a restart: check it again
            try:
                await asyncio.to_thread(verify.check_checksum, done_path, expected=sha256,
                                        declared=meta.get("declared_sha256"))
            except ChecksumMismatch:
                self._forget_download(sha256)
            else:
                return done_path, Downloaded(path=done_path, size=done_path.stat().st_size, resumed_from=0,
                                             declared_sha256=meta.get("declared_sha256"),
                                             signature=meta.get("signature"), key_id=meta.get("key_id"))
        part = self.driver.downloads / f"{sha256}.part"

        def received(done: int, total: int) -> None:
            total = total or int(artifact.get("size") or 0)
            percent = 70 * done // total if total else 0
            reporter.soon(percent, "downloading", f"{human_bytes(done)}/{human_bytes(total)}")

        downloaded: Downloaded | None = None
        backoff = Backoff(base=self.backoff.base, cap=self.backoff.cap, rng=self.backoff.rng)
        for attempt in range(6):
            try:
                downloaded = await self.client.download(url, part, progress=received)
                break
            except ApiError as error:
                if not _transient(error) or attempt == 5:
                    raise DownloadFailed(f"the store refused the download ({error}); nothing was installed") \
                        from None
            except ClientError as error:
                if attempt == 5:
                    raise DownloadFailed(f"{error}; the partial download is kept and resumes next time") from None
            self.terminal.note("download interrupted; resuming")
            await asyncio.sleep(backoff.next_delay())
        assert downloaded is not None
        if downloaded.declared_sha256 and downloaded.declared_sha256 != sha256:
            self._forget_download(sha256)
            raise ChecksumMismatch(f"the store sent SHA-256 {downloaded.declared_sha256} for an artifact the task "
                                   f"names {sha256}; nothing was installed")
        try:
            await asyncio.to_thread(verify.check_checksum, part, expected=sha256,
                                    declared=downloaded.declared_sha256)
        except ChecksumMismatch:
            self._forget_download(sha256)  # never resume from bytes that do not add up
            raise
        write_json_atomic(meta_path, {"declared_sha256": downloaded.declared_sha256,
                                      "signature": downloaded.signature, "key_id": downloaded.key_id})
        part.rename(done_path)
        part.with_name(part.name + ".etag").unlink(missing_ok=True)
        return done_path, Downloaded(path=done_path, size=downloaded.size, resumed_from=downloaded.resumed_from,
                                     declared_sha256=downloaded.declared_sha256, signature=downloaded.signature,
                                     key_id=downloaded.key_id)

    def _forget_download(self, sha256: str) -> None:
        for suffix in (".archive", ".json", ".part", ".part.etag"):
            (self.driver.downloads / f"{sha256}{suffix}").unlink(missing_ok=True)

    async def _public_keys(self, key_id: str | None) -> list[PublicKey]:
        """The store's keys: pinned ones, or fetched (again when a signature names a key not seen yet)."""
        if self.pinned_keys:
            return self.pinned_keys
        if self._keys is None or (key_id and all(k.id != key_id for k in self._keys)):
            try:
                keys = (await self.client.public_keys() if self._stop.is_set()  # stopping: one try
                        else await self._retrying(self.client.public_keys, "key fetch"))
            except ClientError as error:
                raise DownloadFailed(f"cannot fetch the store's public keys ({error})") from None
            if keys is None:
                raise DownloadFailed("stopped before the store's public keys could be fetched")
            self._keys = keys
        return self._keys


class _Reporter:
    """Sends a task's progress to the store (at most every half second, and at each stage)
    and draws it on the terminal. A 409 answer (``task_canceled``) marks the task canceled:
    the next checkpoint before the switch raises :class:`Canceled`, and nothing changes."""

    interval = 0.5

    def __init__(self, agent: Agent, task_id: str) -> None:
        self.agent = agent
        self.task_id = task_id
        self.pending: tuple[int, str] | None = None
        self.canceled = False
        self.committed = False
        self._pump: asyncio.Task[None] | None = None

    def __enter__(self) -> Self:
        self._pump = asyncio.get_running_loop().create_task(self._pumping())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pump is not None:
            self._pump.cancel()

    def check(self) -> None:
        if self.canceled and not self.committed:
            raise Canceled("the task was canceled on the store; nothing was changed")

    def soon(self, percent: int, stage: str, detail: str = "") -> None:
        """From a callback (or a worker thread): draw now, send within :attr:`interval`."""
        self.check()
        self.agent.terminal.update(percent, stage, detail)
        self.pending = (percent, stage)

    async def report(self, percent: int, stage: str) -> None:
        self.check()
        self.agent.terminal.update(percent, stage)
        self.pending = None
        await self._send(percent, stage)
        self.check()

    async def _pumping(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self.pending is not None:
                percent, stage = self.pending
                self.pending = None
                await self._send(percent, stage)

    async def _send(self, percent: int, stage: str) -> None:
        try:
            await self.agent.client.progress(self.task_id, {"percent": max(0, min(100, percent)), "message": stage})
        except ApiError as error:
            if error.status == 409:
                self.canceled = True
            else:
                log.warning("progress report failed: %s", error)
        except ClientError as error:  # progress is best effort; the result is what counts
            log.warning("progress report failed: %s", error)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
