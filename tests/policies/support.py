"""Reading what a settings change left behind: stored rows, audit rows, events."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from mercato.access.principal import Principal
from mercato.app.runtime import Runtime
from mercato.models import AuditEntry, OutboxEvent
from mercato.models.policies import StoreSetting
from mercato.policies import service
from mercato.policies.schemas import Policies

V1 = "/api/v1"
SETTINGS = f"{V1}/admin/settings"

DEFAULTS: dict[str, int] = {
    "commission_bps": 2000, "refund_window_days": 14, "refund_auto_max_downloads": 3,
    "order_timeout_seconds": 900, "welcome_credit": 0, "payment_poll_after_seconds": 30,
    "payment_expire_seconds": 1800, "max_order_lines": 20, "max_line_quantity": 10,
    "signups_per_address_per_hour": 20,
}


async def stored(runtime: Runtime) -> dict[str, Any]:
    async with runtime.db.read_session() as session:
        return {row.key: row.value for row in await session.scalars(select(StoreSetting))}


async def audit_rows(runtime: Runtime) -> list[AuditEntry]:
    async with runtime.db.read_session() as session:
        return list(await session.scalars(select(AuditEntry).where(AuditEntry.action == "settings:update")
                                          .order_by(AuditEntry.at)))


async def events(runtime: Runtime) -> list[OutboxEvent]:
    async with runtime.db.read_session() as session:
        return list(await session.scalars(select(OutboxEvent).where(OutboxEvent.type == "config.changed")
                                          .order_by(OutboxEvent.sequence)))


async def current(runtime: Runtime) -> Policies:
    async with runtime.db.read_session() as session:
        return await service.current(session)


def system_admin() -> Principal:
    """An admin caller for service-level tests (the audit log keeps its id and email)."""
    return Principal(user_id=uuid.uuid4(), email="ops@example.org", roles=frozenset({"super_admin"}), grants={})
