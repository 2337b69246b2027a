"""Failpoints for fault tests: ``MERCATO_FAILPOINTS=name=crash|error|sleep:ms,...``.

``await failpoint("relay.after_fanout")`` does nothing unless that name is configured,
and costs one dict lookup on an empty dict when nothing is (the production case).

- ``crash``: ``os._exit(137)`` at once, like a killed process (no cleanup, no commit).
- ``error``: raise :class:`FailpointError`.
- ``sleep:ms``: pause.
- a ``@N`` suffix fires only on the N-th hit (``delivery.after_effect=crash@3``).
"""

from __future__ import annotations

import asyncio
import os
import sys

_points: dict[str, tuple[str, int | None]] = {}
_hits: dict[str, int] = {}


class FailpointError(RuntimeError):
    pass


def configure(spec: str | None) -> None:
    _points.clear()
    _hits.clear()
    for item in (spec or "").split(","):
        name, _, action = item.strip().partition("=")
        if not name or not action:
            continue
        action, _, nth = action.partition("@")
        _points[name] = (action, int(nth) if nth else None)


async def failpoint(name: str) -> None:
    if not _points:
        return
    configured = _points.get(name)
    if configured is None:
        return
    action, nth = configured
    _hits[name] = _hits.get(name, 0) + 1
    if nth is not None and _hits[name] != nth:
        return
    if action == "crash":
        sys.stderr.write(f"failpoint {name}: crash\n")
        sys.stderr.flush()
        os._exit(137)
    if action == "error":
        raise FailpointError(f"failpoint {name}")
    if action.startswith("sleep:"):
        await asyncio.sleep(int(action.split(":", 1)[1]) / 1000)


configure(os.environ.get("MERCATO_FAILPOINTS"))
