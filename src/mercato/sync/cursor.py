"""Opaque sync cursors: small JSON documents in URL-safe base64."""

from __future__ import annotations

import base64
import json
from typing import Any

from mercato.sync.errors import InvalidSyncCursor


def encode(document: Any) -> str:
    raw = json.dumps(document, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError) as exc:
        raise invalid() from exc


def invalid() -> InvalidSyncCursor:
    return InvalidSyncCursor("Use the cursor value of the previous answer as it was given, or none to start over.",
                             errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "invalid_cursor"}])
