"""bus/watch.py: the relay of this process wakes the requests waiting on the subjects it relayed,
before any observer (``live.push``) has reached the events."""

from __future__ import annotations

import asyncio
import uuid

from mercato.app.runtime import Runtime
from mercato.bus import watch
from mercato.live.waiting import wait_until


async def test_a_relayed_subject_wakes_its_waiters_only_while_they_watch() -> None:
    woken: list[str] = []
    with watch.watching("order-1", lambda: woken.append("order-1")):
        watch.relayed(["order-2"])
        assert woken == []
        watch.relayed(["order-1", "order-2"])
        assert woken == ["order-1"]
    watch.relayed(["order-1"])
    assert woken == ["order-1"]
    assert "order-1" not in watch._waiters


async def test_a_waiting_request_is_answered_when_the_relay_hands_out_its_subject(runtime: Runtime) -> None:
    # The live stream says nothing here (no live.push runs): only the relay's word wakes the wait.
    settled = False
    asked = asyncio.Event()

    async def done() -> bool:
        asked.set()
        return settled

    subject = str(uuid.uuid4())
    waiting = asyncio.create_task(wait_until(runtime.live, user_id=uuid.uuid4(), subject=subject, done=done,
                                             seconds=60))
    await asyncio.wait_for(asked.wait(), timeout=10)  # the wait has subscribed and asked once
    settled = True
    watch.relayed([subject])
    assert await asyncio.wait_for(waiting, timeout=10) is True
