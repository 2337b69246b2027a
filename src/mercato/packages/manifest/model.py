"""The tables of ``mercato.toml`` as frozen, strict pydantic models; :class:`Manifest` is
the whole file. Unknown tables and keys are refused by name (``extra="forbid"``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mercato.kit import semver
from mercato.packages.manifest.fields import (
    ConfigSchema,
    Dependencies,
    FilesystemPermissions,
    Homepage,
    LaunchUrl,
    LicenceText,
    NetworkPermissions,
    PackageName,
    PackagePath,
    PlatformList,
    RangeText,
    Requirement,
    Summary,
    VersionText,
)

PLATFORMS = ("any", "linux-x64", "linux-arm64", "macos-x64", "macos-arm64", "windows-x64", "windows-arm64")
KINDS = ("app", "plugin", "game")


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PackageInfo(_Table):
    """``[package]``: identity and store metadata."""

    name: PackageName
    version: VersionText
    kind: Literal["app", "plugin", "game"]
    summary: Summary
    license: LicenceText
    homepage: Homepage | None = None
    changelog: PackagePath | None = None


class Compatibility(_Table):
    """``[compatibility]``: the host versions and platforms the package runs on."""

    host: RangeText | None = None
    platforms: PlatformList = ["any"]


class Requirements(_Table):
    """``[requirements]``: checked against what the instance reports (MB, non-negative)."""

    memory_mb: Requirement | None = None
    disk_mb: Requirement | None = None


class Permissions(_Table):
    """``[permissions]``: shown to reviewers and users, scored by the checks."""

    network: NetworkPermissions = []
    filesystem: FilesystemPermissions = []
    notifications: bool = False


class ConfigSection(_Table):
    """``[config]``: install-time settings, described by a JSON Schema object."""

    json_schema: ConfigSchema = Field(alias="schema")


class Launch(_Table):
    """``[launch]``: what "open" returns, a path inside the installation or a URL template."""

    entry: PackagePath | None = None
    url: LaunchUrl | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Launch:
        if (self.entry is None) == (self.url is None):
            raise ValueError("Give exactly one of launch.entry (a path in the package) and launch.url "
                             "(such as 'http://{host}:{port}/').")
        return self


class Manifest(_Table):
    """A validated ``mercato.toml``."""

    package: PackageInfo
    compatibility: Compatibility = Compatibility()
    requirements: Requirements = Requirements()
    permissions: Permissions = Permissions()
    dependencies: Dependencies = {}
    config: ConfigSection | None = None
    launch: Launch | None = None

    @property
    def name(self) -> str:
        return self.package.name

    @property
    def version(self) -> str:
        return self.package.version

    @property
    def kind(self) -> str:
        return self.package.kind

    @property
    def host_range(self) -> semver.VersionRange:
        return semver.parse_range(self.compatibility.host or "*")

    def to_document(self) -> dict[str, Any]:
        """The manifest as JSON-ready data (keys as in ``mercato.toml``), stored per version."""
        return self.model_dump(mode="json", by_alias=True)
