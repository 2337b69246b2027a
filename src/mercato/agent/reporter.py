"""A task's progress, sent to the store and drawn on the terminal while the task runs."""

from __future__ import annotations

import asyncio
import logging
from typing import Self

from mercato.agent.client import AgentClient
from mercato.agent.errors import Canceled
from mercato.agent.progress import TerminalProgress
from mercato.client.errors import ApiError, ClientError

log = logging.getLogger("mercato.agent")


class Reporter:
    """Sends a task's progress to the store (at most every half second, and at each stage)
    and draws it on the terminal. A 409 answer (``task_canceled``) marks the task canceled:
    the next checkpoint before the switch raises :class:`Canceled`, and nothing changes."""

    interval = 0.5

    def __init__(self, client: AgentClient, terminal: TerminalProgress, task_id: str) -> None:
        self.client = client
        self.terminal = terminal
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
        self.terminal.update(percent, stage, detail)
        self.pending = (percent, stage)

    async def report(self, percent: int, stage: str) -> None:
        self.check()
        self.terminal.update(percent, stage)
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
            await self.client.progress(self.task_id, {"percent": max(0, min(100, percent)), "message": stage})
        except ApiError as error:
            if error.status == 409:
                self.canceled = True
            else:
                log.warning("progress report failed: %s", error)
        except ClientError as error:  # progress is best effort; the result is what counts
            log.warning("progress report failed: %s", error)
