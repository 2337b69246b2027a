"""The agent loop: heartbeat with inventory, long-poll for tasks, carry them out, report.

One task runs at a time; heartbeats go on beside it. A task's result is recorded in the
journal before it is reported, and results the store has not taken are reported again
after a restart. Network failures and 5xx answers are retried with exponential backoff
and jitter; a refused token stops the agent. Carrying out a task is ``tasks.py``'s job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from mercato.agent.backoff import Backoff, transient
from mercato.agent.client import AgentClient
from mercato.agent.downloads import Downloads
from mercato.agent.errors import DownloadFailed, InstallFailed
from mercato.agent.files import FilesDriver
from mercato.agent.journal import Journal
from mercato.agent.progress import TerminalProgress
from mercato.agent.resources import HOST_VERSION, platform_for_store, resources
from mercato.agent.tasks import Executor
from mercato.client.errors import ApiError, ClientError
from mercato.client.schemas import PublicKey
from mercato.kit.failpoints import failpoint

log = logging.getLogger("mercato.agent")

T = TypeVar("T")

POLL_WAIT = 25.0
HEARTBEAT_SECONDS = 15.0


class TokenRefused(Exception):
    """The store refused the instance token (401/403): the agent cannot go on."""


class _Stopped(Exception):
    """The agent was stopped while waiting for the store."""


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
        self.journal = Journal(driver.journal)
        self.executor = Executor(client, driver, Downloads(client, driver.downloads, self.terminal, self.backoff),
                                 self.terminal, keys=self._public_keys)

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
                if not transient(error):
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
        """Carry out one task as the store handed it out (or replay its recorded result) and
        report it; returns the report."""
        task_id = str(task["id"])
        entry = self.journal.entry(task_id, int(task.get("attempt") or 1))
        report = self.journal.recorded_result(entry)
        if report is None:
            report = await self.executor.carry_out(task)
            self.journal.record(entry, task_id=task_id, attempt=task.get("attempt"), result=report)
        await failpoint("agent.before_result")
        await self._send_result(entry, task_id, report)
        self._inventory_changed.set()
        return report

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
            if transient(error):
                return
            self.terminal.note(f"the store did not take the result of task {task_id}: {error}")
        except ClientError:
            return
        self.journal.mark_reported(entry)

    async def _report_pending(self) -> None:
        for entry, task_id, report in self.journal.unreported():
            await self._send_result(entry, task_id, report)

    # -- keys --

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
