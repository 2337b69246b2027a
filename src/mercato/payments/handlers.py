"""The payment poller (DOMAIN.md "Payment"): asks the provider about payments that stay
pending, with backoff, and expires those that run out of time. Registered like every sweep:
one process runs it per interval (a lease), and running it twice is harmless."""

from __future__ import annotations

from mercato.bus.context import HandlerContext
from mercato.bus.scheduler import sweep
from mercato.payments import service

POLL_EVERY_SECONDS = 5.0


@sweep("payments.poll", every=POLL_EVERY_SECONDS)
async def poll_pending_payments(bus: HandlerContext) -> None:
    if bus.runtime is None:
        return  # a bare bus (the bus's own tests) runs every sweep but has no store's gateway to ask
    await service.poll_due(bus.db, gateway=bus.runtime.payments)
