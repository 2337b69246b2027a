"""Personal registry tokens: how an editor that cannot send credentials (VS Code's gallery
client) reaches the extensions its user owns. The token travels in the registry URL's path
(``/openvsx/t/{token}/…``), so it is read-only by construction: it opens downloads of what
its user owns and nothing else. Only its hash is stored."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from mercato.models.base import Base, IdMixin


class RegistryToken(IdMixin, Base):
    __tablename__ = "registry_tokens"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # First characters of the token, shown in lists so a user can tell tokens apart.
    hint: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
