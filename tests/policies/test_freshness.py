"""Every process applies a settings change within a second or two, though ``current`` is
cached: the writing transaction and process at once, the ``config.changed`` subscriber's
process on delivery, any other process when its entry expires (``CACHE_SECONDS``)."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from mercato.app.runtime import Runtime
from mercato.bus.events import CloudEvent
from mercato.kit.clock import utcnow
from mercato.policies import handlers, repository, service
from tests.library.support import eventually
from tests.policies.support import SETTINGS, current, events, system_admin
from tests.support.actors import Actor
from tests.support.bus import handled


async def change_behind_the_cache(runtime: Runtime, **values: int) -> None:
    """Write rows the way another process's change lands here: no eviction in this process."""
    async with runtime.db.transaction() as session:
        for key, value in values.items():
            await repository.put(session, key=key, value=value, at=utcnow(), by=None)


@pytest.fixture
def long_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries that outlive the test: whatever freshness it sees comes from an eviction."""
    monkeypatch.setattr(service, "CACHE_SECONDS", 600.0)
    service.evict_cache()


async def test_current_is_served_from_the_cache(runtime: Runtime, long_cache: None) -> None:
    """The guard of the tests below: without an eviction, a change behind the cache is not seen."""
    assert (await current(runtime)).commission_bps == 2000
    await change_behind_the_cache(runtime, commission_bps=1234)
    assert (await current(runtime)).commission_bps == 2000


async def test_the_writing_process_applies_a_change_as_soon_as_it_commits(
        client: httpx.AsyncClient, admin: Actor, runtime: Runtime, long_cache: None) -> None:
    assert (await current(runtime)).order_timeout_seconds == 900
    response = await client.patch(SETTINGS, headers=admin.headers, json={"order_timeout_seconds": 300})
    assert response.status_code == 200, response.text
    assert (await current(runtime)).order_timeout_seconds == 300


async def test_the_changing_transaction_reads_its_own_change_and_a_rollback_leaves_nothing(
        runtime: Runtime, long_cache: None) -> None:
    assert (await current(runtime)).max_order_lines == 20
    async with runtime.db.transaction() as session:
        assert (await service.current(session)).max_order_lines == 20
        after = await service.update(session, actor=system_admin(), changes={"max_order_lines": 5})
        assert after.max_order_lines == 5
        assert (await service.current(session)).max_order_lines == 5

    class Abandon(Exception):
        pass

    with pytest.raises(Abandon):
        async with runtime.db.transaction() as session:
            await service.update(session, actor=system_admin(), changes={"max_order_lines": 7})
            assert (await service.current(session)).max_order_lines == 7
            raise Abandon
    assert (await current(runtime)).max_order_lines == 5
    async with runtime.db.write_session() as session:  # a new transaction of the same kind of session
        assert (await service.current(session)).max_order_lines == 5


async def test_config_changed_evicts_the_cache_of_the_process_that_delivers_it(
        runtime: Runtime, long_cache: None) -> None:
    assert (await current(runtime)).refund_window_days == 14
    await change_behind_the_cache(runtime, refund_window_days=30)
    assert (await current(runtime)).refund_window_days == 14
    event = CloudEvent(type="config.changed", subject="policies",
                       data={"changed": {"refund_window_days": {"before": 14, "after": 30}}})
    async with runtime.db.transaction() as session:
        await handlers.evict_cache(session, event)
    assert (await current(runtime)).refund_window_days == 30


async def test_the_bus_delivers_config_changed_to_the_eviction_subscriber(
        client: httpx.AsyncClient, admin: Actor, runtime: Runtime) -> None:
    assert (await client.patch(SETTINGS, headers=admin.headers, json={"welcome_credit": 100})).status_code == 200
    [announced] = await events(runtime)
    await handled(runtime, "policies.evict_cache", announced.id)  # an observer: its cursor passes the event


async def test_a_cached_copy_expires_within_cache_seconds(runtime: Runtime) -> None:
    assert service.CACHE_SECONDS <= 1.0
    service.evict_cache()
    assert (await current(runtime)).max_line_quantity == 10
    await change_behind_the_cache(runtime, max_line_quantity=3)
    started = asyncio.get_running_loop().time()
    await eventually(lambda: current(runtime), lambda policies: policies.max_line_quantity == 3, timeout=5)
    assert asyncio.get_running_loop().time() - started < 2.0


# Another process: reads the policies in a loop (its cache always warm) and reports how long
# after being told of a committed change it first saw it.
OTHER_PROCESS = r"""
import asyncio, sys, time
from mercato.kit.db import Database
from mercato.policies import service

async def main(url: str, key: str, target: int) -> None:
    db = Database(url)
    told: list[float] = []
    loop = asyncio.get_running_loop()

    async def read() -> int:
        async with db.read_session() as session:
            return getattr(await service.current(session), key)

    print("ready", await read(), flush=True)
    waiting = loop.run_in_executor(None, sys.stdin.readline)
    waiting.add_done_callback(lambda _: told.append(time.monotonic()))
    deadline = time.monotonic() + 20
    while (value := await read()) != target or not told:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    print("seen", value, round(time.monotonic() - told[0], 3) if told else -1, flush=True)
    await db.dispose()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def test_another_process_applies_a_change_within_two_seconds(
        client: httpx.AsyncClient, admin: Actor, runtime: Runtime, tmp_path: Path) -> None:
    script = tmp_path / f"other_{uuid.uuid4().hex[:6]}.py"
    script.write_text(OTHER_PROCESS)
    src = str(Path(service.__file__).resolve().parents[2])  # noqa: ASYNC240 - test set-up
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    other = await asyncio.create_subprocess_exec(
        sys.executable, str(script), runtime.settings.resolved_database_url, "commission_bps", "750",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    assert other.stdin is not None and other.stdout is not None
    try:
        ready = await asyncio.wait_for(other.stdout.readline(), 60)
        assert ready.split() == [b"ready", b"2000"], (ready, await other.stderr.read() if other.stderr else b"")
        response = await client.patch(SETTINGS, headers=admin.headers, json={"commission_bps": 750})
        assert response.status_code == 200, response.text
        other.stdin.write(b"changed\n")
        await other.stdin.drain()
        seen = (await asyncio.wait_for(other.stdout.readline(), 60)).split()
        assert seen[:2] == [b"seen", b"750"], seen
        assert 0 <= float(seen[2]) < 2.0, seen
    finally:
        if other.returncode is None:
            other.kill()
        await other.wait()
