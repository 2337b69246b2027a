"""Request and response models of installs: instances, installations, tasks and the agent protocol."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from mercato.kit.schemas import ReadModel, Slug, WriteModel

InstallationState = Literal["installing", "installed", "stopped", "upgrading", "uninstalling", "uninstalled",
                            "failed"]
TaskState = Literal["queued", "dispatched", "running", "succeeded", "failed", "canceled"]
TaskKind = Literal["install", "upgrade", "uninstall", "stop", "resume"]
Platform = Literal["linux-x64", "linux-arm64", "macos-x64", "macos-arm64", "windows-x64", "windows-arm64"]
Config = dict[str, Any]
VersionText = str


# --- instances ----------------------------------------------------------------------------------

class InstanceCreate(WriteModel):
    name: str = Field(min_length=1, max_length=100, description="What you call the device or server.")


class InstanceRead(ReadModel):
    id: uuid.UUID
    name: str
    token_hint: str = Field(description="The first characters of the instance token, to tell tokens apart.")
    platform: str | None = Field(description="As the agent reported it last.")
    host_version: str | None
    resources: dict[str, Any] = Field(description="Free memory and disk (MB) the agent reported last.")
    reported_at: datetime | None = Field(description="The agent's last heartbeat.")
    created_at: datetime


class InstanceCreated(InstanceRead):
    token: str = Field(description="The instance token (`mci_…`), shown this once: give it to `mercato agent`.")


# --- installations and tasks ------------------------------------------------------------------

class InstallationCreate(WriteModel):
    listing_id: uuid.UUID
    version: VersionText | None = Field(default=None, max_length=100,
                                        description="An approved version; omitted: the latest.")
    name: Slug | None = Field(default=None, description="Unique among the instance's installations; "
                                                        "omitted: the listing's slug.")
    config: Config | None = Field(default=None, description="Install-time settings, checked against the "
                                                            "package's `[config]` schema.")
    auto_upgrade: bool = Field(default=False, description="Upgrade by itself when a newer compatible "
                                                          "version is approved.")


class UpgradeRequest(WriteModel):
    version: VersionText | None = Field(default=None, max_length=100, description="Omitted: the latest.")


class CloneRequest(WriteModel):
    name: Slug = Field(description="The name of the second copy.")
    config: Config | None = Field(default=None, description="Omitted: the source installation's settings.")


class InstallationUpdate(WriteModel):
    auto_upgrade: bool


class InstallationRead(ReadModel):
    id: uuid.UUID
    instance_id: uuid.UUID
    listing_id: uuid.UUID
    name: str
    state: InstallationState
    version: str | None = Field(description="The version in place (null until the first install succeeds).")
    config: Config
    auto_upgrade: bool
    active_task_id: uuid.UUID | None = Field(description="The dispatched or running task, if any.")
    created_at: datetime
    updated_at: datetime


class TaskRead(ReadModel):
    id: uuid.UUID
    instance_id: uuid.UUID
    installation_id: uuid.UUID
    kind: TaskKind
    state: TaskState
    version: str | None = Field(description="The version this task installs (install, upgrade).")
    from_version: str | None
    progress: int = Field(ge=0, le=100)
    message: str | None
    attempt: int
    max_attempts: int
    queued_at: datetime
    dispatched_at: datetime | None
    started_at: datetime | None
    deadline_at: datetime | None = Field(description="Dispatched/running tasks must report by then.")
    finished_at: datetime | None
    created_at: datetime
    updated_at: datetime


class OpenRead(ReadModel):
    installation_id: uuid.UUID
    kind: Literal["entry", "url"]
    entry: str | None = Field(description="A path inside the installation directory.")
    url: str | None = Field(description="The launch URL, templated with the instance's reported host.")


# --- the agent protocol --------------------------------------------------------------------------

class InventoryItem(WriteModel):
    """One installation found on the instance (its directory exists)."""

    installation_id: uuid.UUID
    listing_id: uuid.UUID
    version: VersionText | None = Field(default=None, max_length=100,
                                        description="The version that is current on disk.")
    state: Literal["installed", "stopped", "failed"] = Field(
        description="`failed`: the directory is there but not usable (verification of the current version failed).")


class Resources(WriteModel):
    memory_mb: int | None = Field(default=None, ge=0, le=2**40, description="Free memory, MiB.")
    disk_mb: int | None = Field(default=None, ge=0, le=2**40, description="Free disk under the agent's root, MiB.")
    host: str | None = Field(default=None, max_length=255, description="The host name launch URLs use.")


class Heartbeat(WriteModel):
    inventory: list[InventoryItem] = Field(default_factory=list, max_length=1000)
    resources: Resources = Field(default_factory=Resources)
    platform: Platform | None = None
    host_version: VersionText | None = Field(default=None, max_length=100,
                                             description="The agent/host version (SemVer).")


class HeartbeatRead(ReadModel):
    instance_id: uuid.UUID
    received_at: datetime
    queued_tasks: int = Field(description="Tasks waiting for this instance: fetch them with GET /agent/tasks.")


class Artifact(ReadModel):
    url: str = Field(description="GET it with the instance token (Range supported).")
    sha256: str
    size: int
    format: Literal["zip", "tar.gz"]
    signature: str | None = Field(description="Ed25519 over the store's artifact message + sha256 (GET /keys).")
    signature_key_id: str | None


class AgentInstallation(ReadModel):
    id: uuid.UUID
    name: str
    listing_id: uuid.UUID
    listing_slug: str
    state: InstallationState
    version: str | None
    config: Config


class AgentTask(ReadModel):
    id: uuid.UUID
    kind: TaskKind
    state: TaskState
    attempt: int
    version: str | None
    from_version: str | None
    deadline_at: datetime | None
    installation: AgentInstallation
    artifact: Artifact | None = Field(description="For install and upgrade: what to download and verify.")
    licence: dict[str, Any] | None = Field(description="The owner's signed licence document (install, upgrade).")


class AgentTaskList(ReadModel):
    items: list[AgentTask]


class ProgressReport(WriteModel):
    percent: int = Field(ge=0, le=100)
    message: str | None = Field(default=None, max_length=1000)


class ResultReport(WriteModel):
    outcome: Literal["succeeded", "failed"]
    message: str | None = Field(default=None, max_length=4000)


# --- operations ------------------------------------------------------------------------------------

class SweepRead(ReadModel):
    name: str
    last_run_at: datetime | None
    ok: bool | None
    error: str | None
    next_run_after: datetime


class RuntimeSnapshot(ReadModel):
    at: datetime
    instances: dict[str, int] = Field(description="`registered`, and `reporting` (a heartbeat within the stale time).")
    installations: dict[str, int] = Field(description="Installations by state.")
    tasks: dict[str, int] = Field(description="Tasks by state.")
    overdue_tasks: int = Field(description="Dispatched or running tasks past their deadline (the sweep fails them).")
    sweeps: list[SweepRead]
