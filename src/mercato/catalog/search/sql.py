"""The SQL the adapters write through: statements with every parameter bound and typed, and
the values read back in the form the search keeps (ids, JSON lists)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.types import Uuid

from mercato.kit.types import UTCDateTime


def statement(sql: str, **params: Any) -> TextClause:
    """``text(sql)`` with every parameter bound, typed where the database needs it (ids,
    times) and lists expanded (``IN :ids``)."""
    binds = []
    for name, value in params.items():
        if isinstance(value, uuid.UUID):
            binds.append(bindparam(name, value, type_=Uuid()))
        elif isinstance(value, datetime):
            binds.append(bindparam(name, value, type_=UTCDateTime()))
        elif isinstance(value, (list, tuple)):
            typed = Uuid() if value and isinstance(value[0], uuid.UUID) else None
            binds.append(bindparam(name, list(value), expanding=True, type_=typed))
        else:
            binds.append(bindparam(name, value))
    return text(sql).bindparams(*binds)


def as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def json_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        value = json.loads(value)
    return list(value or [])
