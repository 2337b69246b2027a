"""What the webhook tests share besides their fixtures (``conftest.py``): signature checks
written independently of ``mercato.kit.signing``, a driver that does what the bus does, and
the API calls that create webhooks and cause their events."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import func, select

from mercato.app.runtime import Runtime
from mercato.bus.delivery import event_from_row
from mercato.config import Settings
from mercato.kit.clock import utcnow
from mercato.models import OutboxEvent, WebhookDelivery
from mercato.webhooks import handlers, sending
from tests.support.actors import Actor, Actors
from tests.support.receivers import Received

V1 = "/api/v1"


# --- Standard Webhooks, written independently ----------------------------------------------------

def signatures_valid_for(secret: str, received: Received) -> bool:
    """Does ``webhook-signature`` hold a v1 signature of this request by ``secret``?"""
    key = base64.b64decode(secret[len("whsec_"):])
    signed = f"{received.headers['webhook-id']}.{received.headers['webhook-timestamp']}.".encode() + received.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [part.split(",", 1) for part in received.headers["webhook-signature"].split(" ")]
    return any(version == "v1" and hmac.compare_digest(signature, expected) for version, signature in offered)


# --- driving the bus by hand ---------------------------------------------------------------------

class Driver:
    """Does what the bus does for the webhooks subscriber (fan-out of each new event, once)
    and runs the sender, so tests control time."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.after = 0
        self.now = utcnow()

    async def fan_out(self) -> int:
        async with self.runtime.db.transaction() as session:
            rows = list(await session.scalars(select(OutboxEvent).where(OutboxEvent.sequence > self.after)
                                              .order_by(OutboxEvent.sequence)))
            await handlers.fan_out(session, [event_from_row(row) for row in rows])
            if rows:
                self.after = rows[-1].sequence
        return len(rows)

    async def send(self, *, later: timedelta = timedelta(0), settings: Settings | None = None) -> int:
        """Run the sender ``later`` after the previous run (past any backoff when large)."""
        self.now = max(self.now + later, utcnow())
        return await sending.send_due(self.runtime.db, settings or self.runtime.settings, now=self.now)

    async def deliveries(self) -> list[WebhookDelivery]:
        async with self.runtime.db.read_session() as session:
            return list(await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at)))

    async def delivery_count(self) -> int:
        async with self.runtime.db.read_session() as session:
            return int(await session.scalar(select(func.count()).select_from(WebhookDelivery)) or 0)


# --- API helpers ---------------------------------------------------------------------------------

@dataclass
class World:
    client: httpx.AsyncClient
    actors: Actors
    owner: Actor
    slug: str

    async def create(self, url: str, *, event_types: list[str] | None = None, actor: Actor | None = None,
                     publisher: str | None = "<mine>") -> httpx.Response:
        body: dict[str, object] = {"url": url, "event_types": event_types or ["publisher.updated"]}
        if publisher is not None:
            body["publisher"] = self.slug if publisher == "<mine>" else publisher
        return await self.client.post(f"{V1}/webhooks", headers=(actor or self.owner).headers, json=body)

    async def touch(self, slug: str | None = None, actor: Actor | None = None, name: str | None = None) -> None:
        """Cause a publisher.updated event of ``slug`` (default: the owner's publisher)."""
        slug = slug or self.slug
        response = await self.client.patch(f"{V1}/publishers/{slug}", headers=(actor or self.owner).headers,
                                           json={"name": name or f"Renamed {datetime.now().timestamp()}"})
        assert response.status_code == 200, response.text
