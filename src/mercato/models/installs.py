"""Installs (I1–I6): the user's instances, what is installed on them, and the tasks that change it."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mercato.models.base import Base, IdMixin, JSONType, TimestampMixin


class Instance(IdMixin, TimestampMixin, Base):
    """An install target (a device or server) where ``mercato agent`` runs with the
    instance token. Only the token's SHA-256 is stored; deleting the instance revokes it
    (``revoked_at``) and keeps the row for the history of its tasks."""

    __tablename__ = "instances"
    __table_args__ = (Index("ix_instances_owner", "owner_id", "created_at"),)

    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_hint: Mapped[str] = mapped_column(String(16))  # the first characters, to tell tokens apart
    # What the agent reported last (heartbeat).
    platform: Mapped[str | None] = mapped_column(String(32))
    host_version: Mapped[str | None] = mapped_column(String(100))
    resources: Mapped[dict] = mapped_column(JSONType, default=dict)  # type: ignore[type-arg]
    inventory: Mapped[list] = mapped_column(JSONType, default=list)  # type: ignore[type-arg]
    reported_at: Mapped[datetime | None]
    # Status correction compares the inventory reported at ``reported_at`` once.
    corrected_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Installation(IdMixin, TimestampMixin, Base):
    """One copy of a listing on an instance. ``active_name`` is the name while the copy
    exists (NULL once uninstalled), so names are unique among the live copies of an
    instance. ``active_task_id`` is the one dispatched or running task (a guarded update
    takes it): one running task per installation."""

    __tablename__ = "installations"
    __table_args__ = (UniqueConstraint("instance_id", "active_name"),
                      Index("ix_installations_owner", "owner_id", "created_at"),
                      Index("ix_installations_listing", "listing_id", "state"))

    instance_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    listing_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("listings.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    active_name: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    version: Mapped[str | None] = mapped_column(String(100))
    config: Mapped[dict] = mapped_column(JSONType, default=dict)  # type: ignore[type-arg]
    auto_upgrade: Mapped[bool] = mapped_column(default=False)
    active_task_id: Mapped[uuid.UUID | None]
    # The newest approved version the owner was told about (update notices, I6).
    notified_version: Mapped[str | None] = mapped_column(String(100))


class InstallTask(IdMixin, TimestampMixin, Base):
    """An asynchronous operation on an installation (DOMAIN.md "Installation and task")."""

    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_instance_queue", "instance_id", "state", "queued_at"),
                      Index("ix_tasks_owner", "owner_id", "created_at"),
                      Index("ix_tasks_installation", "installation_id", "state"),
                      Index("ix_tasks_deadline", "state", "deadline_at"))

    instance_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"))
    installation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("installations.id", ondelete="CASCADE"))
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # install | upgrade | uninstall | stop | resume
    state: Mapped[str] = mapped_column(String(16))
    version_id: Mapped[uuid.UUID | None]
    version: Mapped[str | None] = mapped_column(String(100))
    from_version: Mapped[str | None] = mapped_column(String(100))
    # The installation's state when the task was dispatched (restored when it is canceled).
    from_state: Mapped[str | None] = mapped_column(String(16))
    progress: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    queued_at: Mapped[datetime]
    dispatched_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    deadline_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
