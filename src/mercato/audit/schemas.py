from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from mercato.kit.schemas import ReadModel


class AuditRead(ReadModel):
    id: uuid.UUID
    at: datetime
    actor_id: uuid.UUID | None
    actor_email: str | None
    action: str
    resource_type: str
    resource_id: str | None
    result: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    ip: str | None
    user_agent: str | None
    request_id: str | None
