"""The ``files`` install driver: each installation is a folder under the agent's root.

::

    ROOT/
      .mercato-agent/              the agent's own files (never an installation)
        downloads/                 <sha256>.part while downloading, <sha256>.archive once checked
        journal/                   <task id>.json: results of finished tasks (exactly once)
        trash/                     removed installations and versions, emptied at start
                                   (downloads untouched for a week are deleted then too)
      <name>/                      one installation
        installation.json          who it is, which version, running or stopped
        config.json                the install-time settings the owner gave (JSON)
        current -> versions/<v>    a relative symlink, switched atomically (rename)
        versions/<v>/              the unpacked payload of each kept version
        .staging-*/                a version being unpacked (never current; removed at start)

Crash safety: a version is unpacked into ``.staging-*`` beside ``versions/`` and renamed
into ``versions/<v>`` only when complete; ``current`` is replaced by renaming a new symlink
over it, so it always names a complete version. The version an installation reports is
the one ``current`` names; ``installation.json`` is written atomically (temp file, fsync,
rename) and reconciled with ``current`` at start. The version before the last upgrade is
kept for rollback; older ones go to the trash.

The driver installs files and nothing else: it never runs code from a package. "Running"
and "stopped" are the state recorded for the installation (a host that launches apps reads
it); stop and resume only toggle it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from mercato.agent.errors import (
    InstallFailed,
    InvalidTask,
    NameTaken,
    NotInstalled,
    PackageRefused,
)
from mercato.agent.unpack import Unpacked, unpack
from mercato.kit.failpoints import failpoint
from mercato.packages.archive import InspectedArchive
from mercato.packages.errors import PackageError
from mercato.packages.manifest import MANIFEST_NAME, parse_manifest

AGENT_DIR = ".mercato-agent"
STATE_FILE = "installation.json"
CONFIG_FILE = "config.json"
CURRENT = "current"
VERSIONS = "versions"
STAGING_PREFIX = ".staging-"
DOWNLOAD_KEEP_SECONDS = 7 * 24 * 3600

RunState = Literal["running", "stopped"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+-]{0,127}")


def check_name(name: object) -> str:
    """An installation name is one safe folder name: letters, digits, ``.``, ``_``, ``-``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise InvalidTask(f"{name!r} is not a usable installation name (letters, digits, '.', '_', '-'; "
                          "at most 100; not starting with '.' or '-').")
    return name


def check_version(version: object) -> str:
    if not isinstance(version, str) or not _VERSION.fullmatch(version) or ".." in version:
        raise InvalidTask(f"{version!r} is not a usable version.")
    return version


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temp file in the same folder, fsynced, then renamed over ``path``."""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, sort_keys=True)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    _sync_dir(path.parent)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _sync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


@dataclass
class Installation:
    """What ``installation.json`` records, with ``version`` taken from ``current``."""

    name: str
    installation_id: str
    listing_id: str
    listing_slug: str
    version: str
    state: RunState = "running"
    previous_version: str | None = None
    digests: dict[str, str] = field(default_factory=dict)  # version -> SHA-256 of its archive
    installed_at: str = ""
    updated_at: str = ""

    @property
    def sha256(self) -> str | None:
        return self.digests.get(self.version)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Installation:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass(frozen=True)
class Artifact:
    """A checked archive ready to install: the inspection found it safe and it is the
    listing and version asked for."""

    path: Path
    inspected: InspectedArchive

    @property
    def sha256(self) -> str:
        return self.inspected.sha256


PostSwitchCheck = Callable[[Path], None]


class FilesDriver:
    """Installations as folders under ``root``; every method is safe to repeat after a crash."""

    name = "files"

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.agent_dir = self.root / AGENT_DIR
        self.downloads = self.agent_dir / "downloads"
        self.journal = self.agent_dir / "journal"
        self.trash = self.agent_dir / "trash"
        for folder in (self.root, self.agent_dir, self.downloads, self.journal, self.trash):
            folder.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the root's lock: two agents on one root would undo each other's work."""
        # POSIX only (optional elsewhere)
        import fcntl

        with open(self.agent_dir / "agent.lock", "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise InstallFailed(f"another agent is running on {self.root}") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- reading --

    def folder(self, name: str) -> Path:
        return self.root / check_name(name)

    def get(self, name: str) -> Installation | None:
        folder = self.folder(name)
        try:
            data = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise InstallFailed(f"{folder / STATE_FILE} cannot be read ({error}).") from None
        current = self.current_version(name)
        if current is None:  # a first install that never reached its switch
            return None
        record = Installation.from_json(data)
        record.version = current
        return record

    def current_version(self, name: str) -> str | None:
        """The version ``current`` names, if it names a complete version folder."""
        link = self.folder(name) / CURRENT
        try:
            target = os.readlink(link)
        except OSError:
            return None
        parts = Path(target).parts
        if len(parts) != 2 or parts[0] != VERSIONS or not (self.folder(name) / target).is_dir():
            return None
        return parts[1]

    def installations(self) -> list[Installation]:
        found = []
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(".") or not entry.is_dir() or entry.is_symlink():
                continue
            with contextlib.suppress(InvalidTask, InstallFailed):
                if (record := self.get(entry.name)) is not None:
                    found.append(record)
        return found

    def by_id(self, installation_id: str) -> Installation | None:
        return next((i for i in self.installations() if i.installation_id == installation_id), None)

    # -- start-up --

    def recover(self) -> list[str]:
        """Finish what a crash interrupted; returns what was done, for the log.

        Removes staging folders and the trash, removes installation folders where nothing
        ever became current (a first install cut short), and makes ``installation.json``
        agree with ``current``. Folders the agent did not make are left alone."""
        done: list[str] = []
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(".") or not entry.is_dir() or entry.is_symlink():
                continue
            ours = (entry / STATE_FILE).exists() or (entry / VERSIONS).is_dir()
            for staging in entry.glob(STAGING_PREFIX + "*"):
                self._discard(staging)
                done.append(f"removed the unfinished {staging.relative_to(self.root)}")
                ours = True
            if not ours:
                continue  # not an installation: leave it alone
            if not _NAME.fullmatch(entry.name) or self.current_version(entry.name) is None:
                self._discard(entry)
                done.append(f"removed {entry.name}, an install that never finished")
                continue
            with contextlib.suppress(InvalidTask, InstallFailed):
                if (fixed := self._reconcile(entry.name)) is not None:
                    done.append(fixed)
        for item in self.trash.iterdir():
            shutil.rmtree(item, ignore_errors=True) if item.is_dir() else item.unlink(missing_ok=True)
        stale = time.time() - DOWNLOAD_KEEP_SECONDS
        for item in self.downloads.iterdir():
            with contextlib.suppress(OSError):
                if item.stat().st_mtime < stale:  # a download no task came back for
                    item.unlink()
        return done

    def _reconcile(self, name: str) -> str | None:
        data = json.loads((self.folder(name) / STATE_FILE).read_text(encoding="utf-8"))
        record = Installation.from_json(data)
        current = self.current_version(name)
        if current is None:
            return None
        if current != record.version:
            previous = record.previous_version if record.previous_version != current else record.version
            self._save(replace(record, version=current, previous_version=previous, updated_at=_now()))
            return f"{name}: recorded version {record.version} corrected to {current} (what is current)"
        return None

    # -- changing --

    async def deploy(self, artifact: Artifact, *, name: str, installation_id: str, listing_id: str,
                     listing_slug: str, config: dict[str, Any] | None = None, progress: Unpacked | None = None,
                     check: PostSwitchCheck | None = None) -> tuple[Installation, bool]:
        """Install ``artifact`` as ``name`` (a first install or an upgrade of the same installation).

        Returns the installation and whether anything changed (False when that very archive is
        already current: a repeated task is a no-op). The new version is unpacked beside the
        old, renamed into ``versions/`` when complete and made current atomically; ``check``
        then runs on the new ``current`` and, if it raises, ``current`` goes back to the
        previous version (or, on a first install, the installation is removed)."""
        check_name(name)
        manifest = artifact.inspected.manifest
        version = check_version(manifest.version)
        folder = self.folder(name)
        existing = self.get(name)
        if existing is not None and existing.installation_id != installation_id:
            raise NameTaken(f"{name} is already installed here as another installation "
                            f"({existing.installation_id}); choose another name.")
        if existing is not None and existing.version == version and existing.sha256 == artifact.sha256:
            self._write_config(folder, config)
            return existing, False
        if existing is None and folder.exists() and any(
                entry.name not in (VERSIONS, STATE_FILE, CONFIG_FILE) and not entry.name.startswith(".")
                for entry in folder.iterdir()):
            raise NameTaken(f"{folder} exists and is not an installation of this agent; move it away or "
                            "choose another name.")
        folder.mkdir(exist_ok=True)
        (folder / VERSIONS).mkdir(exist_ok=True)
        await self._stage(artifact, folder, version, progress)
        now = _now()
        if existing is None:
            record = Installation(name=name, installation_id=installation_id, listing_id=listing_id,
                                  listing_slug=listing_slug, version=version, state="running",
                                  digests={version: artifact.sha256}, installed_at=now, updated_at=now)
        else:
            record = replace(existing, digests={**existing.digests, version: artifact.sha256}, updated_at=now)
        # Record the new digest first: a crash before the switch leaves the old version current.
        self._save(replace(record, version=existing.version) if existing is not None else record)
        await failpoint("agent.before_switch")
        self._switch(folder, version)
        await failpoint("agent.after_switch")
        previous = existing.version if existing is not None and existing.version != version else (
            existing.previous_version if existing is not None else None)
        record = replace(record, version=version, previous_version=previous)
        self._save(record)
        self._write_config(folder, config)
        try:
            self.check_current(name, listing_slug=listing_slug, version=version)
            if check is not None:
                check(folder / CURRENT)
        except Exception as error:
            await self._roll_back(name, existing, failed=version)
            raise InstallFailed(f"{listing_slug} {version} failed its check after the switch ({error}); "
                                + (f"rolled back to {existing.version}." if existing is not None
                                   else "the new installation was removed.")) from error
        return self._prune(record, keep={version, previous} - {None}), True

    async def _stage(self, artifact: Artifact, folder: Path, version: str, progress: Unpacked | None) -> None:
        """Unpack into a staging folder, then rename it into ``versions/<version>``."""
        target = folder / VERSIONS / version
        if target.exists():
            if self.current_version(folder.name) == version:
                raise InstallFailed(f"{folder.name} already has {version} current from another archive; "
                                    "uninstall it first.")
            self._discard(target)  # left over from an earlier attempt: unpack afresh
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=folder))
        try:
            await asyncio.to_thread(unpack, artifact.path, artifact.inspected, staging, progress=progress)
            await failpoint("agent.after_unpack")
            _sync_dir(staging)
            os.rename(staging, target)
            _sync_dir(target.parent)
        except PackageRefused:
            raise
        except OSError as error:
            raise InstallFailed(f"cannot write {artifact.inspected.manifest.name} {version} under "
                                f"{folder} ({error.strerror or error}); nothing was changed.") from None
        finally:
            # synchronous like the rename above: one stat of a local folder
            if staging.exists():  # noqa: ASYNC240
                self._discard(staging)

    def _write_config(self, folder: Path, config: dict[str, Any] | None) -> None:
        if config is not None:
            write_json_atomic(folder / CONFIG_FILE, config)

    def _switch(self, folder: Path, version: str) -> None:
        """Point ``current`` at ``versions/<version>`` in one rename."""
        temp = folder / f".current-{uuid.uuid4().hex}"
        os.symlink(f"{VERSIONS}/{version}", temp)
        try:
            os.replace(temp, folder / CURRENT)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _sync_dir(folder)

    async def _roll_back(self, name: str, existing: Installation | None, *, failed: str) -> None:
        folder = self.folder(name)
        if existing is None:
            self._discard(folder)
            return
        self._switch(folder, existing.version)
        self._save(replace(existing, updated_at=_now()))
        self._discard(folder / VERSIONS / failed)

    def check_current(self, name: str, *, listing_slug: str, version: str) -> None:
        """What must hold once a version is current: its manifest is the listing and version
        installed, and the launch entry it names (if any) is a file in it."""
        current = self.folder(name) / CURRENT
        try:
            manifest = parse_manifest((current / MANIFEST_NAME).read_bytes())
        except (OSError, PackageError) as error:
            raise InstallFailed(f"the current version's mercato.toml cannot be read ({error})") from None
        if (manifest.name, manifest.version) != (listing_slug, version):
            raise InstallFailed(f"current holds {manifest.name} {manifest.version}, not {listing_slug} {version}")
        entry = manifest.launch.entry if manifest.launch is not None else None
        if entry and not (current / entry).is_file():
            raise InstallFailed(f"the launch entry {entry} is missing")

    def _prune(self, record: Installation, *, keep: set[str | None]) -> Installation:
        """Remove versions other than ``keep`` (current and previous) from disk and the record."""
        for entry in (self.folder(record.name) / VERSIONS).iterdir():
            if entry.name not in keep:
                self._discard(entry)
        kept = {v: d for v, d in record.digests.items() if v in keep}
        if kept != record.digests:
            record = replace(record, digests=kept)
            self._save(record)
        return record

    def set_state(self, name: str, state: RunState) -> tuple[Installation, bool]:
        """Stop or resume; returns the installation and whether its state changed."""
        record = self.get(name)
        if record is None:
            raise NotInstalled(f"Nothing is installed here as {name}.")
        if record.state == state:
            return record, False
        record = replace(record, state=state, updated_at=_now())
        self._save(record)
        return record, True

    async def uninstall(self, name: str) -> bool:
        """Remove the installation and all its versions; False if it was not there (already removed)."""
        folder = self.folder(name)
        if not folder.exists():
            return False
        self._discard(folder)
        await failpoint("agent.after_uninstall")
        return True

    def rollback(self, name: str) -> Installation:
        """Make the kept previous version current again (the one before the last upgrade)."""
        record = self.get(name)
        if record is None:
            raise NotInstalled(f"Nothing is installed here as {name}.")
        previous = record.previous_version
        if previous is None or not (self.folder(name) / VERSIONS / previous).is_dir():
            raise InstallFailed(f"{name} has no previous version to roll back to.")
        self._switch(self.folder(name), previous)
        record = replace(record, version=previous, previous_version=record.version, updated_at=_now())
        self._save(record)
        return record

    # -- plumbing --

    def _save(self, record: Installation) -> None:
        write_json_atomic(self.folder(record.name) / STATE_FILE, asdict(record))

    def _discard(self, path: Path) -> None:
        """Move ``path`` to the trash in one rename (so it vanishes at once), then delete it."""
        if not path.exists() and not path.is_symlink():
            return
        grave = self.trash / f"{path.name}-{uuid.uuid4().hex}"
        os.rename(path, grave)
        _sync_dir(path.parent)
        shutil.rmtree(grave, ignore_errors=True) if grave.is_dir() and not grave.is_symlink() else grave.unlink()
