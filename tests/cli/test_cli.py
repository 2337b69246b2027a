"""The ``mercato`` command as a user runs it: real subprocesses against a real store."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mercato.demo import DEMO_ACCOUNTS, DEMO_PASSWORD
from tests.cli.servers import clean_env, serving


def _env(data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    return clean_env(MERCATO_DATA_DIR=str(data_dir), MERCATO_DATABASE_URL=database_url, MERCATO_TESTING="1", **extra)


def _mercato(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mercato", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_migrate_uses_the_data_dir_from_the_environment(tmp_path: Path) -> None:
    env = clean_env(MERCATO_DATA_DIR=str(tmp_path / "store"))
    result = _mercato("migrate", env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "store" / "mercato.db").exists()
    assert "migrated the database from an empty database to " in result.stdout, result.stdout
    again = _mercato("migrate", env=env)
    assert again.returncode == 0, again.stderr
    assert "already current" in again.stdout and "migrated" not in again.stdout, again.stdout


def test_createsuperuser_is_non_interactive_and_reads_the_password_from_the_environment(
        tmp_path: Path, database_url: str) -> None:
    env = _env(tmp_path, database_url, MERCATO_ADMIN_PASSWORD="a long admin pass phrase for the store")
    result = _mercato("createsuperuser", "--email", "root@example.org", env=env)
    assert result.returncode == 0, result.stderr
    assert "created super admin root@example.org" in result.stdout
    again = _mercato("createsuperuser", "--email", "root@example.org", env=env)
    assert again.returncode == 0 and "is now a super admin" in again.stdout


def test_createsuperuser_with_a_weak_password_fails_with_one_readable_line(tmp_path: Path, database_url: str) -> None:
    result = _mercato("createsuperuser", "--email", "root@example.org", "--password", "short",
                      env=_env(tmp_path, database_url))
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: The password must be at least 12 characters")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_createsuperuser_without_a_password_and_no_terminal_refuses(tmp_path: Path, database_url: str) -> None:
    result = _mercato("createsuperuser", "--email", "root@example.org", env=_env(tmp_path, database_url))
    assert result.returncode == 1 and "MERCATO_ADMIN_PASSWORD" in result.stderr


# Right after the demo loads, the embedded bus works through its thousands of events on the
# one SQLite writer: requests that write (sign-in) may wait for it on a busy machine.
SLOW = 120.0


@pytest.mark.slow
def _wait_for_line(log_path: Path, text: str, *, within: float = 240) -> None:
    """Until the process writes ``text`` to its log (its own signal), failing at ``within``."""
    deadline = time.monotonic() + within
    while text not in log_path.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"no {text!r} in the log:\n{log_path.read_text()[-4000:]}"
        time.sleep(0.1)


def test_serve_demo_answers_readyz_and_every_demo_account_can_sign_in(tmp_path: Path, database_url: str) -> None:
    # The demo catalog (44 listings with packages, reviewed and rated) loads beside the
    # running server, which answers at once; the server says when the demo is loaded.
    with serving("--demo", env=_env(tmp_path, database_url), log_path=tmp_path / "serve.log",
                 ready_within=240) as base:
        _wait_for_line(tmp_path / "serve.log", "demo loaded")
        for account in DEMO_ACCOUNTS:
            login = httpx.post(f"{base}/api/v1/auth/login", json={"email": account.email, "password": DEMO_PASSWORD},
                               timeout=SLOW)
            assert login.status_code == 200, (account.email, login.text)
            me = httpx.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"},
                           timeout=SLOW)
            assert set(account.roles) <= set(me.json()["roles"])
        publisher = httpx.get(f"{base}/api/v1/publishers/demo-studio", timeout=SLOW)
        assert publisher.status_code == 200 and publisher.json()["name"] == "Demo Studio"
        catalog = httpx.get(f"{base}/api/v1/listings", params={"total": "true", "limit": 100}, timeout=SLOW).json()
        assert catalog["total"] >= 40 and {"app", "plugin", "game"} <= set(catalog["facets"]["kind"])
        assert len(catalog["facets"]["category"]) >= 6
        rated = [item for item in catalog["items"] if item["rating"]["count"] > 0]
        assert rated and all(item["latest_version"] for item in catalog["items"])


def test_an_up_to_date_database_runs_no_migration(tmp_path: Path, database_url: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A restart on a current schema checks the revision with one query and leaves Alembic alone."""
    from mercato.app.bootstrap import prepare_database
    from mercato.config import Settings
    from mercato.kit import migrate

    settings = Settings(data_dir=tmp_path, database_url=database_url)
    assert migrate.is_current(database_url)  # the test database is migrated to the heads

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a migration ran on an up-to-date database")

    monkeypatch.setattr(migrate, "upgrade", refuse)
    assert prepare_database(settings) is False
    fresh = tmp_path / "fresh"
    monkeypatch.undo()
    assert prepare_database(Settings(data_dir=fresh)) is True
    assert migrate.is_current(f"sqlite+aiosqlite:///{fresh / 'mercato.db'}")


def test_the_heads_read_from_the_revision_files_are_alembics() -> None:
    from alembic.script import ScriptDirectory

    from mercato.kit import migrate

    alembic_heads = set(ScriptDirectory.from_config(migrate.alembic_config("sqlite://")).get_heads())
    assert migrate.head_revisions() == alembic_heads
