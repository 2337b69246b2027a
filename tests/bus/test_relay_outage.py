"""The relay in a database outage: it backs off instead of spinning, and says so once."""

from __future__ import annotations

import asyncio

import pytest

from mercato.bus import service
from mercato.bus.registry import Registry
from mercato.bus.service import RELAY_BACKOFF_LIMIT_SECONDS, Bus
from mercato.config import Settings
from mercato.kit.db import Database, DatabaseUnavailable


class Stop(Exception):
    pass


class Recorder:
    """Stands in for the bus's structured logger: keeps (level, event) of each line."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __getattr__(self, level: str):  # type: ignore[no-untyped-def]
        return lambda event, *args, **fields: self.lines.append((level, event))


async def test_a_failing_relay_waits_longer_each_pass_up_to_the_limit_and_warns_once(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(data_dir=tmp_path)
    bus = Bus(settings, Database(settings.resolved_database_url), Registry(), role="embedded")
    pauses: list[float] = []

    async def unavailable() -> int:
        raise DatabaseUnavailable("connection refused")

    async def pause(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 8:
            raise Stop

    bus.relay_now = unavailable  # type: ignore[method-assign]
    bus._pause = pause  # type: ignore[method-assign]
    logs = Recorder()
    monkeypatch.setattr(service, "log", logs)
    with pytest.raises(Stop):
        await asyncio.wait_for(bus._relay_loop(), 5)
    await bus.db.dispose()

    poll = settings.bus_relay_poll_seconds
    assert pauses[0] == 2 * poll
    assert all(later >= earlier for earlier, later in zip(pauses, pauses[1:], strict=False))
    assert pauses[-1] == RELAY_BACKOFF_LIMIT_SECONDS
    warnings = [event for level, event in logs.lines if level == "warning" and "relay backs off" in event]
    tracebacks = [event for level, event in logs.lines if level == "exception"]
    assert len(warnings) == 1 and not tracebacks
