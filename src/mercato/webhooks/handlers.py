"""Reactions to the store's events: every event becomes deliveries for the webhooks that want it.

Importing this module also declares the webhook sweeps (``sending.py``), so a process that
loads the handlers (``bus.registry.load_handlers``) sends webhooks too.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.events import CloudEvent
from mercato.bus.registry import ALL_EVENTS, subscribe
from mercato.webhooks import sending as _sending  # noqa: F401  (registers the webhooks.send sweep)
from mercato.webhooks import service


@subscribe(ALL_EVENTS, name="webhooks.fan_out")
async def fan_out(session: AsyncSession, event: CloudEvent) -> None:
    """One delivery row per matching active webhook, in the delivery's transaction (the bus
    runs this once per event)."""
    await service.fan_out(session, event)
