"""The one wait-and-poll loop (``kit/waiting.poll_until``): answers, deadline, pauses and wake-ups."""

from __future__ import annotations

import asyncio

import pytest

from mercato.kit.waiting import poll_until


async def test_the_first_answer_other_than_none_is_returned() -> None:
    answers = iter([None, None, [], "late"])

    async def check() -> list[str] | str | None:
        return next(answers)

    loop = asyncio.get_running_loop()
    assert await poll_until(check, deadline=loop.time() + 5, interval=0.001) == []  # an empty answer counts


async def test_none_once_the_deadline_passed_after_a_last_look() -> None:
    looks: list[float] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 0.05

    async def check() -> None:
        looks.append(loop.time())

    assert await poll_until(check, deadline=deadline, interval=0.02) is None
    assert len(looks) >= 2 and looks[-1] >= deadline  # at once, after each pause, and at the deadline


async def test_pauses_double_up_to_the_maximum(monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", sleep)

    async def check() -> bool | None:
        return True if len(pauses) == 4 else None

    loop = asyncio.get_running_loop()
    assert await poll_until(check, deadline=loop.time() + 100, interval=0.01, max_interval=0.04)
    assert pauses == [0.01, 0.02, 0.04, 0.04]


async def test_a_wake_up_ends_the_pause_early() -> None:
    wake = asyncio.Event()
    looks = 0

    async def check() -> bool | None:
        nonlocal looks
        looks += 1
        return True if looks == 2 else None

    loop = asyncio.get_running_loop()
    loop.call_later(0.01, wake.set)
    started = loop.time()
    assert await poll_until(check, deadline=started + 10, interval=5, wake=wake)
    assert loop.time() - started < 1
