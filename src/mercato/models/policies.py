"""Runtime store policies (O4): one row per policy an admin changed.

A key without a row has its default (``mercato.policies.schemas.Policies``), so a new
policy or a new default in the code needs no data migration.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from mercato.models.base import Base, JSONType


class StoreSetting(Base):
    __tablename__ = "store_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONType, nullable=False)
    updated_at: Mapped[datetime]
    # The admin who changed it last (no foreign key: like the audit log, it outlives accounts).
    updated_by: Mapped[uuid.UUID | None]
