"""Roles and permissions, stored so a super admin can edit them at runtime."""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from mercato.models.base import Base, TimestampMixin


class Role(TimestampMixin, Base):
    __tablename__ = "roles"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    is_system: Mapped[bool] = mapped_column(default=False)


class RoleGrant(Base):
    """A permission held by a role, with its condition: ``any``, ``own`` or ``public``."""

    __tablename__ = "role_grants"

    role_name: Mapped[str] = mapped_column(ForeignKey("roles.name", ondelete="CASCADE"), primary_key=True)
    permission: Mapped[str] = mapped_column(String(64), primary_key=True)
    condition: Mapped[str] = mapped_column(String(16), default="any")


class UserRole(Base):
    __tablename__ = "user_roles"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role_name: Mapped[str] = mapped_column(ForeignKey("roles.name", ondelete="CASCADE"), primary_key=True)


class KnownPermission(Base):
    """Permissions the seeder has already granted to the default roles.

    A permission new in the code is granted to its default roles once; after that a
    super admin's edits stick (removing it from a role is not undone at the next start).
    """

    __tablename__ = "known_permissions"

    permission: Mapped[str] = mapped_column(String(64), primary_key=True)
