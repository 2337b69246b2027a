"""The in-process transport: a backlog runs a bounded number of jobs at once and stops promptly."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from mercato.bus.transport import Transport


async def test_a_backlog_of_in_process_jobs_runs_at_most_the_configured_number_at_once() -> None:
    running = 0
    peak = 0
    finished = 0

    async def on_job(subscriber: str, event_id: uuid.UUID) -> None:
        nonlocal running, peak, finished
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        finished += 1

    transport = Transport(None, queue="bounded", on_job=on_job, concurrency=3)
    await transport.start(consume=True)
    try:
        for _ in range(40):
            await transport.kick("subscriber", uuid.uuid4())
        for _ in range(500):
            if finished == 40:
                break
            await asyncio.sleep(0.01)
    finally:
        await transport.stop()
    assert finished == 40
    assert peak == 3


async def test_stopping_cancels_queued_in_process_jobs_instead_of_waiting_for_them(
        caplog: pytest.LogCaptureFixture) -> None:
    started = asyncio.Event()

    async def on_job(subscriber: str, event_id: uuid.UUID) -> None:
        started.set()
        await asyncio.sleep(3600)

    transport = Transport(None, queue="stopping", on_job=on_job, concurrency=2)
    await transport.start(consume=True)
    for _ in range(10):
        await transport.kick("subscriber", uuid.uuid4())
    await asyncio.wait_for(started.wait(), 5)
    with caplog.at_level(logging.DEBUG):
        await asyncio.wait_for(transport.stop(), 5)
    assert not transport.running
    # a job cancelled by the stop is not an error: no trace in the output
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info], caplog.text
