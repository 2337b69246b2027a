"""The audit log for admins: filtered, paginated, exportable as CSV. Here in ``ops`` rather than in
``audit``, which the access guard records refusals in: these routes need the guard."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from starlette.responses import StreamingResponse

from mercato.access.dependencies import requires
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.audit import service
from mercato.audit import service as audit
from mercato.audit.schemas import AuditRead
from mercato.kit.errors import ValidationFailed
from mercato.kit.pagination import CursorParam, Limit, Total, decode_cursor, encode_cursor, keyset_page
from mercato.kit.schemas import Page, Timestamp
from mercato.platform.routing import ReadSession, RuntimeDep, TransactionalRoute

router = APIRouter(route_class=TransactionalRoute, tags=["admin"], prefix="/admin")


@router.get("/audit", response_model=Page[AuditRead],
            responses={200: {"content": {"text/csv": {}}, "description": "JSON page, or CSV with format=csv"}})
async def search_audit(
    actor: Annotated[Principal, requires(Permission.audit_read)], session: ReadSession, rt: RuntimeDep,
    actor_id: Annotated[uuid.UUID | None, Query(alias="actor")] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    resource: Annotated[str | None, Query(max_length=200, description="`type` or `type:id`")] = None,
    since: Timestamp | None = None, until: Timestamp | None = None,
    format: Literal["json", "csv"] = "json", cursor: CursorParam = None, limit: Limit = 20, total: Total = False,
) -> Page[AuditRead] | StreamingResponse:
    """Audit rows, newest first. `format=csv` exports every matching row (no paging)."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise ValidationFailed(f"{name} needs a timezone (RFC 3339, e.g. 2026-01-01T00:00:00Z).",
                                   errors=[{"loc": ["query", name], "msg": "timezone required", "type": "value_error"}])
    resource_type, _, resource_id = (resource or "").partition(":")
    filters = dict(actor=actor_id, action=action, resource_type=resource_type or None,
                   resource_id=resource_id or None, since=since, until=until)
    if format == "csv":
        # The first batch is read before answering, so a filter the database refuses is a
        # 4xx, not an error in the middle of a 200 stream.
        first = await service.search(session, **filters, after=None, limit=service.CSV_BATCH)
        return StreamingResponse(service.csv_rows(rt.db, filters, first), media_type="text/csv",
                                 headers={"Content-Disposition": 'attachment; filename="audit.csv"'})
    rows = await audit.search(session, **filters, after=decode_cursor(cursor), limit=limit + 1)
    page, next_cursor = keyset_page(rows, limit, lambda row: encode_cursor(row.at, row.id))
    counted = await audit.count(session, **filters) if total else None
    return Page[AuditRead](items=[AuditRead.model_validate(r) for r in page], next_cursor=next_cursor, total=counted)
