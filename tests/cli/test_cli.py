"""The ``mercato`` command as a user runs it: real subprocesses against a real store."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mercato.demo import DEMO_ACCOUNTS, DEMO_PASSWORD


def _env(data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERCATO_")}
    env.update(MERCATO_DATA_DIR=str(data_dir), MERCATO_DATABASE_URL=database_url, MERCATO_TESTING="1", **extra)
    return env


def _mercato(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mercato", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_migrate_uses_the_data_dir_from_the_environment(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERCATO_")}
    env["MERCATO_DATA_DIR"] = str(tmp_path / "store")
    result = _mercato("migrate", env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "store" / "mercato.db").exists()


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


@pytest.mark.slow
def test_serve_demo_answers_readyz_and_every_demo_account_can_sign_in(tmp_path: Path, database_url: str) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mercato", "serve", "--demo", "--port", str(port)],
        env=_env(tmp_path, database_url), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.2)
        for account in DEMO_ACCOUNTS:
            login = httpx.post(f"{base}/api/v1/auth/login", json={"email": account.email, "password": DEMO_PASSWORD})
            assert login.status_code == 200, (account.email, login.text)
            me = httpx.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"})
            assert set(account.roles) <= set(me.json()["roles"])
        publisher = httpx.get(f"{base}/api/v1/publishers/demo-studio")
        assert publisher.status_code == 200 and publisher.json()["name"] == "Demo Studio"
    finally:
        process.terminate()
        process.wait(timeout=30)
