"""The ``files`` driver: layout on disk, atomic switch, rollback, crash recovery, safe unpack."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mercato.agent.errors import InstallFailed, NameTaken, NotInstalled, PackageRefused
from mercato.agent.files import FilesDriver, Installation
from mercato.agent.verify import check_package
from tests.agent.support import Ids, artifact, demo_archive, new_ids
from tests.packages import (
    TarEntry,
    ZipEntry,
    files_tar_gz,
    gz,
    tar_bytes,
    valid_files,
    write,
    zip_bytes,
)


@pytest.fixture
def driver(tmp_path: Path) -> FilesDriver:
    return FilesDriver(tmp_path / "root")


async def install(driver: FilesDriver, path: Path, *, name: str = "hello-notes", ids: Ids | None = None,
                  **kwargs: Any) -> tuple[Installation, bool, Ids]:
    ids = ids or new_ids()
    record, changed = await driver.deploy(artifact(path), name=name, installation_id=ids.installation_id,
                                          listing_id=ids.listing_id, listing_slug="hello-notes", **kwargs)
    return record, changed, ids


def state_file(driver: FilesDriver, name: str) -> dict[str, Any]:
    return json.loads((driver.root / name / "installation.json").read_text())


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
async def test_install_unpacks_the_version_and_points_current_at_it(driver: FilesDriver, tmp_path: Path,
                                                                    fmt: str) -> None:
    record, changed, ids = await install(driver, demo_archive(tmp_path, fmt=fmt), config={"workspace": "home"})

    folder = driver.root / "hello-notes"
    assert changed and record.version == "1.0.0"
    assert os.readlink(folder / "current") == "versions/1.0.0"
    entry = folder / "current" / "bin" / "hello-notes"
    assert entry.read_text() == "#!/bin/sh\necho 'Hello Notes 1.0.0'\n"
    assert stat.S_IMODE(entry.stat().st_mode) == 0o755
    assert stat.S_IMODE((folder / "current" / "README.md").stat().st_mode) == 0o644
    saved = state_file(driver, "hello-notes")
    assert (saved["installation_id"], saved["state"], saved["version"]) == (ids.installation_id, "running", "1.0.0")
    assert json.loads((folder / "config.json").read_text()) == {"workspace": "home"}
    assert not list(folder.glob(".staging-*"))


async def test_upgrade_keeps_the_previous_version_and_prunes_older_ones(driver: FilesDriver, tmp_path: Path) -> None:
    _, _, ids = await install(driver, demo_archive(tmp_path, version="1.0.0"))
    await install(driver, demo_archive(tmp_path, version="1.1.0"), ids=ids)
    folder = driver.root / "hello-notes"
    assert sorted(p.name for p in (folder / "versions").iterdir()) == ["1.0.0", "1.1.0"]
    assert state_file(driver, "hello-notes")["previous_version"] == "1.0.0"

    record, _, _ = await install(driver, demo_archive(tmp_path, version="1.2.0"), ids=ids)

    assert sorted(p.name for p in (folder / "versions").iterdir()) == ["1.1.0", "1.2.0"]
    assert os.readlink(folder / "current") == "versions/1.2.0"
    assert (record.version, record.previous_version) == ("1.2.0", "1.1.0")
    assert set(record.digests) == {"1.1.0", "1.2.0"}


async def test_installing_the_current_archive_again_changes_nothing(driver: FilesDriver, tmp_path: Path) -> None:
    path = demo_archive(tmp_path)
    _, _, ids = await install(driver, path)
    before = (driver.root / "hello-notes" / "installation.json").read_text()

    _, changed, _ = await install(driver, path, ids=ids)

    assert not changed
    assert (driver.root / "hello-notes" / "installation.json").read_text() == before


async def test_a_name_held_by_another_installation_is_refused(driver: FilesDriver, tmp_path: Path) -> None:
    path = demo_archive(tmp_path)
    await install(driver, path)
    with pytest.raises(NameTaken):
        await install(driver, path)


async def test_a_folder_the_agent_did_not_make_is_never_installed_into(driver: FilesDriver, tmp_path: Path) -> None:
    (driver.root / "hello-notes").mkdir()
    (driver.root / "hello-notes" / "notes.txt").write_text("mine")
    with pytest.raises(NameTaken, match="not an installation"):
        await install(driver, demo_archive(tmp_path))
    assert (driver.root / "hello-notes" / "notes.txt").read_text() == "mine"


async def test_clone_is_a_second_independent_copy(driver: FilesDriver, tmp_path: Path) -> None:
    path = demo_archive(tmp_path)
    _, _, first = await install(driver, path)
    _, _, second = await install(driver, path, name="hello-notes-2")

    assert {i.installation_id for i in driver.installations()} == {first.installation_id, second.installation_id}
    (driver.root / "hello-notes-2" / "current" / "README.md").write_text("changed")
    assert (driver.root / "hello-notes" / "current" / "README.md").read_text() != "changed"


async def test_stop_and_resume_toggle_the_recorded_state(driver: FilesDriver, tmp_path: Path) -> None:
    await install(driver, demo_archive(tmp_path))
    _, changed = driver.set_state("hello-notes", "stopped")
    assert changed and state_file(driver, "hello-notes")["state"] == "stopped"
    _, changed = driver.set_state("hello-notes", "stopped")
    assert not changed
    driver.set_state("hello-notes", "running")
    assert state_file(driver, "hello-notes")["state"] == "running"
    with pytest.raises(NotInstalled):
        driver.set_state("nothing-here", "stopped")


async def test_uninstall_removes_everything_and_is_idempotent(driver: FilesDriver, tmp_path: Path) -> None:
    await install(driver, demo_archive(tmp_path))
    assert await driver.uninstall("hello-notes")
    assert not (driver.root / "hello-notes").exists()
    assert driver.installations() == []
    assert not await driver.uninstall("hello-notes")
    assert list(driver.trash.iterdir()) == []


async def test_a_failed_check_after_the_switch_rolls_back_to_the_previous_version(driver: FilesDriver,
                                                                                  tmp_path: Path) -> None:
    _, _, ids = await install(driver, demo_archive(tmp_path, version="1.0.0"))

    def broken(current: Path) -> None:
        raise RuntimeError("smoke test failed")

    with pytest.raises(InstallFailed, match="rolled back to 1.0.0"):
        await install(driver, demo_archive(tmp_path, version="1.1.0"), ids=ids, check=broken)

    folder = driver.root / "hello-notes"
    assert os.readlink(folder / "current") == "versions/1.0.0"
    assert [p.name for p in (folder / "versions").iterdir()] == ["1.0.0"]
    assert driver.get("hello-notes").version == "1.0.0"


async def test_a_failed_first_install_leaves_nothing(driver: FilesDriver, tmp_path: Path) -> None:
    def broken(current: Path) -> None:
        raise RuntimeError("smoke test failed")

    with pytest.raises(InstallFailed, match="removed"):
        await install(driver, demo_archive(tmp_path), check=broken)
    assert not (driver.root / "hello-notes").exists()


async def test_rollback_makes_the_kept_previous_version_current(driver: FilesDriver, tmp_path: Path) -> None:
    _, _, ids = await install(driver, demo_archive(tmp_path, version="1.0.0"))
    await install(driver, demo_archive(tmp_path, version="1.1.0"), ids=ids)

    record = driver.rollback("hello-notes")

    assert (record.version, record.previous_version) == ("1.0.0", "1.1.0")
    assert os.readlink(driver.root / "hello-notes" / "current") == "versions/1.0.0"


async def test_recover_removes_what_a_crash_left_half_written(driver: FilesDriver, tmp_path: Path) -> None:
    _, _, ids = await install(driver, demo_archive(tmp_path, version="1.0.0"))
    folder = driver.root / "hello-notes"
    (folder / ".staging-abc" / "bin").mkdir(parents=True)           # killed while unpacking
    (driver.root / "photo-shelf" / ".staging-x").mkdir(parents=True)  # killed during a first install
    (driver.root / "my-own-folder").mkdir()                          # not the agent's: left alone
    (driver.trash / "old").mkdir()

    done = driver.recover()

    assert "removed photo-shelf, an install that never finished" in done
    assert not (folder / ".staging-abc").exists()
    assert not (driver.root / "photo-shelf").exists()
    assert (driver.root / "my-own-folder").is_dir()
    assert list(driver.trash.iterdir()) == []
    assert [i.installation_id for i in driver.installations()] == [ids.installation_id]


async def test_recover_trusts_current_over_a_state_file_written_before_a_crash(driver: FilesDriver,
                                                                               tmp_path: Path) -> None:
    _, _, ids = await install(driver, demo_archive(tmp_path, version="1.0.0"))
    await install(driver, demo_archive(tmp_path, version="1.1.0"), ids=ids)
    folder = driver.root / "hello-notes"
    saved = state_file(driver, "hello-notes")
    (folder / "installation.json").write_text(json.dumps({**saved, "version": "1.0.0", "previous_version": None}))

    assert driver.recover() == ["hello-notes: recorded version 1.0.0 corrected to 1.1.0 (what is current)"]
    assert state_file(driver, "hello-notes")["version"] == "1.1.0"


async def test_a_first_install_without_a_switch_is_not_reported(driver: FilesDriver, tmp_path: Path) -> None:
    await install(driver, demo_archive(tmp_path))
    os.unlink(driver.root / "hello-notes" / "current")  # as if killed just before the first switch

    assert driver.get("hello-notes") is None
    driver.recover()
    assert not (driver.root / "hello-notes").exists()


def hostile(tmp_path: Path, name: str, data: bytes) -> Path:
    return write(tmp_path / name, data)


@pytest.mark.parametrize(("name", "build"), [
    ("traversal.tar.gz", lambda: gz(tar_bytes([*(TarEntry(n, d) for n, d in valid_files().items()),
                                               TarEntry("../evil.txt", b"x")]))),
    ("symlink.tar.gz", lambda: gz(tar_bytes([*(TarEntry(n, d) for n, d in valid_files().items()),
                                             TarEntry("link", type=b"2", linkname="/etc/passwd")]))),
    ("absolute.zip", lambda: zip_bytes([*(ZipEntry(n.encode(), d) for n, d in valid_files().items()),
                                        ZipEntry(b"/tmp/evil.txt", b"x")])),
], ids=["tar-traversal", "tar-symlink", "zip-absolute"])
def test_hostile_archives_are_refused_by_the_store_checks(tmp_path: Path, name: str,
                                                          build: Callable[[], bytes]) -> None:
    path = hostile(tmp_path, name, build())
    from mercato.packages.archive import sha256_of

    with pytest.raises(PackageRefused):
        check_package(path, sha256=sha256_of(path), listing_slug="hello-notes", version="1.4.0")


def test_an_archive_of_another_listing_or_version_is_refused(tmp_path: Path) -> None:
    from mercato.packages.archive import sha256_of

    path = hostile(tmp_path, "ok.tar.gz", files_tar_gz(valid_files()))
    assert check_package(path, sha256=sha256_of(path), listing_slug="hello-notes", version="1.4.0")
    with pytest.raises(PackageRefused, match="not hello-notes 2.0.0"):
        check_package(path, sha256=sha256_of(path), listing_slug="hello-notes", version="2.0.0")
    with pytest.raises(PackageRefused, match="not photo-shelf"):
        check_package(path, sha256=sha256_of(path), listing_slug="photo-shelf", version="1.4.0")


async def test_set_id_bits_never_reach_the_disk(driver: FilesDriver, tmp_path: Path) -> None:
    files = valid_files()
    entries = [TarEntry(n, d, mode=0o6777 if n.startswith("bin/") else 0o666) for n, d in files.items()]
    path = hostile(tmp_path, "modes.tar.gz", gz(tar_bytes(entries)))
    ids = new_ids()
    await driver.deploy(artifact(path), name="hello-notes", installation_id=ids.installation_id,
                        listing_id=ids.listing_id, listing_slug="hello-notes")
    current = driver.root / "hello-notes" / "current"
    assert stat.S_IMODE((current / "bin" / "hello-notes").stat().st_mode) == 0o755
    assert stat.S_IMODE((current / "CHANGELOG.md").stat().st_mode) == 0o644


def test_one_agent_per_root(driver: FilesDriver) -> None:
    with driver.locked(), pytest.raises(InstallFailed, match="another agent is running"), \
            FilesDriver(driver.root).locked():
        pass
    with driver.locked():  # released: usable again
        pass
