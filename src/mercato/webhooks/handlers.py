"""Reactions to the store's events: every event becomes deliveries for the webhooks that want it.

Importing this module also declares the webhook sweeps (``sending.py``), so a process that
loads the handlers (``bus.registry.load_handlers``) sends webhooks too.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.events import CloudEvent
from mercato.bus.registry import ALL_EVENTS, observe
from mercato.webhooks import sending as _sending  # noqa: F401  (registers the webhooks.send sweep)
from mercato.webhooks import service


@observe(ALL_EVENTS, name="webhooks.fan_out")
async def fan_out(session: AsyncSession, events: list[CloudEvent]) -> None:
    """One delivery row per matching active webhook and event, in the batch's transaction
    (the bus reads each event once for this observer)."""
    await service.fan_out(session, events)
