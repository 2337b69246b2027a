"""Carrying out one task against the ``files`` driver: install and upgrade, uninstall, stop and resume.

A task arrives as the store handed it out and is read into the agent protocol's own
model (:class:`~mercato.installs.schemas.AgentTask`, the one the store answers with). Every
step is idempotent: an archive already current is not installed twice, a removed
installation stays removed, so a task handed out again after a crash is simply done again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, get_args

from pydantic import ValidationError

from mercato.agent import verify
from mercato.agent.client import AgentClient, Downloaded
from mercato.agent.downloads import Downloads
from mercato.agent.errors import AgentError, Canceled, InsufficientDisk, InvalidTask, NotInstalled
from mercato.agent.files import Artifact, FilesDriver, Installation, check_name
from mercato.agent.progress import TerminalProgress, human_bytes
from mercato.agent.reporter import Reporter
from mercato.agent.resources import resources
from mercato.client.schemas import PublicKey
from mercato.installs.schemas import AgentInstallation, AgentTask, TaskKind
from mercato.kit.failpoints import failpoint

log = logging.getLogger("mercato.agent")

KeySource = Callable[[str | None], Awaitable[list[PublicKey]]]


def read_task(item: dict[str, Any]) -> AgentTask:
    """The task as the store handed it out, read into the protocol's model (InvalidTask if it does not fit)."""
    if item.get("kind") not in get_args(TaskKind):
        raise InvalidTask(f"this agent cannot carry out {item.get('kind')!r} tasks")
    try:
        return AgentTask.model_validate(item)
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise InvalidTask(f"the task does not fit the agent protocol ({where}: {problem['msg']})") from None


class Executor:
    """Carries out tasks with one driver, downloading through one client; ``keys`` gives the
    store's public keys (fetched again when a signature names a key not seen yet)."""

    def __init__(self, client: AgentClient, driver: FilesDriver, downloads: Downloads, terminal: TerminalProgress,
                 keys: KeySource) -> None:
        self.client = client
        self.driver = driver
        self.downloads = downloads
        self.terminal = terminal
        self.keys = keys

    async def carry_out(self, item: dict[str, Any]) -> dict[str, Any]:
        """Carry out one task; the result to report (``outcome`` and ``message``). A failure is
        a result too: the agent goes on with the next task."""
        try:
            task = read_task(item)
        except InvalidTask as error:
            self.terminal.start(f"task {item.get('id')}")
            return self._failed(error)
        label = f"{task.kind} {task.installation.name or task.installation.listing_slug}"
        if task.version:
            label += f" {task.version}"
        self.terminal.start(label)
        try:
            handler = {"install": self._install, "upgrade": self._install, "uninstall": self._uninstall,
                       "stop": self._set_state, "resume": self._set_state}[task.kind]
            with Reporter(self.client, self.terminal, str(task.id)) as reporter:
                message = await handler(task, reporter)
        except AgentError as error:
            return self._failed(error)
        except (OSError, ValueError, KeyError, TypeError) as error:  # a bug or the disk: fail the task, go on
            log.exception("task %s failed unexpectedly", task.id)
            self.terminal.finish(f"failed: agent_error: {error!r}")
            return {"outcome": "failed", "message": f"agent_error: {error!r}"[:4000]}
        self.terminal.finish(f"done: {message}")
        return {"outcome": "succeeded", "message": message[:4000]}

    def _failed(self, error: AgentError) -> dict[str, Any]:
        self.terminal.finish(f"failed: {error.code}: {error.message}")
        return {"outcome": "failed", "message": f"{error.code}: {error.message}"[:4000]}

    def _local(self, installation: AgentInstallation) -> Installation | None:
        return self.driver.by_id(str(installation.id))

    async def _install(self, task: AgentTask, reporter: Reporter) -> str:
        installation, artifact, version = task.installation, task.artifact, task.version
        if artifact is None or not version:
            raise InvalidTask(f"the {task.kind} task names no artifact or version")
        slug = installation.listing_slug
        local = self._local(installation)
        if task.kind == "upgrade" and local is None:
            raise NotInstalled(f"installation {installation.id} is not on this instance; install it first")
        name = local.name if local is not None else check_name(installation.name or slug)
        if local is not None and local.version == version and local.sha256 == artifact.sha256:
            await reporter.report(100, "already current")
            return f"{slug} {version} is already current as {name}"
        await reporter.report(0, "downloading")
        archive, downloaded = await self.downloads.fetch(artifact, reporter)
        try:
            return await self._verify_and_deploy(task, reporter, archive, downloaded, local=local, name=name)
        except AgentError:
            self.downloads.forget(artifact.sha256.lower())  # a new attempt downloads afresh
            raise

    async def _verify_and_deploy(self, task: AgentTask, reporter: Reporter, archive: Path,
                                 downloaded: Downloaded, *, local: Installation | None, name: str) -> str:
        installation, artifact, version = task.installation, task.artifact, str(task.version)
        assert artifact is not None  # checked by _install
        listing_id, slug = str(installation.listing_id), installation.listing_slug
        await reporter.report(72, "verifying")
        keys = await self.keys(downloaded.key_id or artifact.signature_key_id)
        sha256 = artifact.sha256.lower()  # what the bytes hash to: checked by the download
        verify.check_signature(archive, sha256=sha256, size=downloaded.size,
                               signature=downloaded.signature or artifact.signature,
                               key_id=downloaded.key_id or artifact.signature_key_id, keys=keys)
        checked = "checksum and signature"
        if task.licence is not None:
            verify.check_licence(task.licence, listing_id=listing_id, keys=keys)
            checked = "checksum, signature and licence"
        inspected = await asyncio.to_thread(verify.check_package, archive, sha256=sha256, listing_slug=slug,
                                            version=version)
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
            Artifact(path=archive, inspected=inspected), name=name, installation_id=str(installation.id),
            listing_id=listing_id, listing_slug=slug or inspected.manifest.name,
            config=installation.config, progress=unpacked)
        try:
            await reporter.report(100, "installed")
        except Canceled:  # canceled while it was being switched: undo it
            if local is None:
                await self.driver.uninstall(name)
            elif changed:
                self.driver.rollback(name)
            raise Canceled(f"the task was canceled on the store; {slug} {version} was rolled back") from None
        self.downloads.forget(sha256)
        if not changed:
            return f"{slug} {version} is already current as {name}"
        before = f"; {local.version} kept for rollback" if local is not None and local.version != version else ""
        return f"{slug} {record.version} is current as {record.name} ({checked} verified{before})"

    async def _uninstall(self, task: AgentTask, reporter: Reporter) -> str:
        installation = task.installation
        local = self._local(installation)
        await reporter.report(10, "removing")
        if local is None:
            return f"{installation.name or installation.id} was not installed here; nothing to remove"
        await self.driver.uninstall(local.name)
        reporter.committed = True
        await reporter.report(100, "removed")
        return f"{local.name} ({local.listing_slug} {local.version}) was removed"

    async def _set_state(self, task: AgentTask, reporter: Reporter) -> str:
        local = self._local(task.installation)
        if local is None:
            raise NotInstalled(f"installation {task.installation.id} is not on this instance")
        state = "stopped" if task.kind == "stop" else "running"
        _, changed = self.driver.set_state(local.name, state)
        try:
            await reporter.report(100, state)
        except Canceled:
            self.driver.set_state(local.name, local.state)
            raise
        return f"{local.name} is {state}" + ("" if changed else " (it already was)")
