"""The events the installs module emits (their ``data``; see ``mercato.bus.events``)."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import Field

from mercato.bus.events import EventData, event_type


@event_type("instance.registered", source="installs")
class InstanceRegistered(EventData):
    """The owner registered a device or server to install on."""
    instance_id: uuid.UUID
    user_id: uuid.UUID
    name: str


@event_type("instance.deleted", source="installs")
class InstanceDeleted(EventData):
    """The owner deleted the instance (its token no longer works)."""
    instance_id: uuid.UUID
    user_id: uuid.UUID
    name: str


class InstallationEvent(EventData):
    installation_id: uuid.UUID
    instance_id: uuid.UUID
    user_id: uuid.UUID
    listing_id: uuid.UUID
    name: str


@event_type("installation.created", source="installs")
class InstallationCreated(InstallationEvent):
    """An install was asked for: the installation exists, its install task is queued."""
    state: str
    version: str


@event_type("installation.state_changed", source="installs")
class InstallationStateChanged(InstallationEvent):
    """The installation moved from one state to another (``from``, ``to``)."""
    model_config = EventData.model_config | {"populate_by_name": True, "serialize_by_alias": True}
    from_: str = Field(alias="from")
    to: str
    version: str | None


@event_type("installation.update_available", source="installs")
class InstallationUpdateAvailable(InstallationEvent):
    """A newer compatible version exists (``auto_upgrade``: its upgrade task is queued)."""
    version: str
    installed_version: str | None
    auto_upgrade: bool


class TaskEvent(EventData):
    task_id: uuid.UUID
    instance_id: uuid.UUID
    installation_id: uuid.UUID
    user_id: uuid.UUID
    kind: str
    state: str
    version: str | None
    attempt: int


@event_type("task.queued", source="installs")
class TaskQueued(TaskEvent):
    """A task waits for the instance's agent."""


@event_type("task.dispatched", source="installs")
class TaskDispatched(TaskEvent):
    """The agent took the task."""


@event_type("task.progress", source="installs")
class TaskProgress(TaskEvent):
    """The agent reported progress (0-100) with a message."""
    progress: int
    message: str | None


@event_type("task.succeeded", source="installs")
class TaskSucceeded(TaskEvent):
    """The task finished."""
    message: str | None = None


@event_type("task.failed", source="installs")
class TaskFailed(TaskEvent):
    """The task failed (the previous version stays in place)."""
    message: str | None = None


@event_type("task.canceled", source="installs")
class TaskCanceled(TaskEvent):
    """The task was canceled."""
    message: str | None = None


@event_type("status.corrected", source="installs")
class StatusCorrected(EventData):
    """Status correction fixed a record from what the agent reported, or failed an overdue task."""
    resource: str
    id: uuid.UUID
    user_id: uuid.UUID
    instance_id: uuid.UUID
    field: str
    old: Any
    new: Any
    reason: str
