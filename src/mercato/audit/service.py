"""Recording privileged and money-moving actions (O1).

Call :func:`record` inside the transaction of the change: the audit row and the change
commit together or not at all. Refused authorizations are recorded by the access layer
in a transaction of their own, since the request itself changes nothing.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.audit import repository
from mercato.audit.actions import AuditAction
from mercato.kit.clock import utcnow
from mercato.kit.db import Database
from mercato.kit.requestinfo import current_request
from mercato.models import AuditEntry


async def record(session: AsyncSession, *, actor_id: uuid.UUID | None, actor_email: str | None,
                 action: AuditAction, resource_type: str, resource_id: object | None = None,
                 before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
                 result: str = "success") -> None:
    info = current_request()
    await repository.add(session, AuditEntry(
        id=uuid.uuid4(), at=utcnow(), actor_id=actor_id, actor_email=actor_email, action=action.value,
        resource_type=resource_type, resource_id=None if resource_id is None else str(resource_id),
        result=result, before=_jsonable(before), after=_jsonable(after), ip=info.ip,
        user_agent=(info.user_agent or "")[:500] or None, request_id=info.request_id,
    ))


# The actor of a step no person took: a bus handler, a sweep, a provider's report.
SYSTEM_ACTOR = "system"


async def record_system(session: AsyncSession, *, action: AuditAction, resource_type: str,
                        resource_id: object | None = None, before: dict[str, Any] | None = None,
                        after: dict[str, Any] | None = None) -> None:
    await record(session, actor_id=None, actor_email=SYSTEM_ACTOR, action=action, resource_type=resource_type,
                 resource_id=resource_id, before=before, after=after)



async def count(session: AsyncSession, **filters: Any) -> int:
    return await repository.count(session, **filters)


def _jsonable(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {key: _plain(item) for key, item in value.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (datetime, date)):
        return value.isoformat()  # RFC 3339, like every other timestamp of the API
    return str(value)


# --- reading the log (the API and the admin console) -----------------------------------------------

CSV_COLUMNS = ["id", "at", "actor_id", "actor_email", "action", "resource_type", "resource_id", "result",
               "before", "after", "ip", "user_agent", "request_id"]
CSV_BATCH = 500


async def search(session: AsyncSession, *, after: tuple[datetime, uuid.UUID] | None, limit: int | None,
                 **filters: Any) -> list[AuditEntry]:
    """Rows matching ``filters`` (actor, action, resource_type, resource_id, since, until), newest
    first; ``after`` is the (at, id) of the last row of the previous page."""
    return await repository.search(session, after=after, limit=limit, **filters)


async def csv_rows(db: Database, filters: dict[str, Any], first: list[AuditEntry]) -> AsyncIterator[str]:
    """The CSV export of the rows matching ``filters`` (``first``: the first batch, read by the
    caller so a filter the database refuses is a 4xx, not an error inside a 200 stream). Streamed
    after the route has returned (and closed its sessions): later batches are read through a
    session of its own, closed when the stream ends or is abandoned."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    rows = first
    async with db.read_session() as session:
        while True:
            for row in rows:
                values = []
                for column in CSV_COLUMNS:
                    value = getattr(row, column)
                    if isinstance(value, dict):
                        value = json.dumps(value, sort_keys=True)
                    elif isinstance(value, datetime):
                        value = value.isoformat()
                    values.append("" if value is None else _csv_safe(str(value)))
                writer.writerow(values)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if len(rows) < CSV_BATCH:
                return
            rows = await repository.search(session, **filters, after=(rows[-1].at, rows[-1].id), limit=CSV_BATCH)


def _csv_safe(value: str) -> str:
    """Defuse spreadsheet formula injection (a user agent can start with '=')."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
