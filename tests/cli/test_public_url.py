"""Payment links and e-mails use the address the store is reached at: MERCATO_PUBLIC_URL when
set, else the address ``mercato serve`` binds (not a hard-coded :8000)."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mercato.cli import main as cli
from mercato.config import Settings, bound_url


def _serve(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str) -> tuple[Settings, str]:
    import mercato.app

    seen: dict[str, Any] = {}
    monkeypatch.setattr(mercato.app, "create_app", lambda settings, **_: seen.setdefault("settings", settings))
    monkeypatch.setattr(cli, "_run_server", lambda application, host, port: None)
    monkeypatch.setenv("MERCATO_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(cli.app, ["serve", "--no-migrate", *args])
    assert result.exit_code == 0, result.output
    # serve pauses the collector until its server runs; a server that never ran leaves it on
    assert gc.isenabled()
    return seen["settings"], result.output


def test_serve_derives_the_public_url_from_its_port(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MERCATO_PUBLIC_URL", raising=False)
    settings, output = _serve(monkeypatch, tmp_path, "--port", "8123")
    assert settings.public_url == "http://127.0.0.1:8123"
    assert "Mercato on http://127.0.0.1:8123" in output


def test_a_configured_public_url_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MERCATO_PUBLIC_URL", "https://store.example.org")
    settings, _ = _serve(monkeypatch, tmp_path, "--port", "8123", "--host", "0.0.0.0")
    assert settings.public_url == "https://store.example.org"


def test_a_wildcard_bind_is_reached_on_loopback_and_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MERCATO_PUBLIC_URL", raising=False)
    settings, output = _serve(monkeypatch, tmp_path, "--host", "0.0.0.0", "--port", "9001")
    assert settings.public_url == "http://127.0.0.1:9001" and "MERCATO_PUBLIC_URL" in output


@pytest.mark.parametrize(("host", "url"), [("127.0.0.1", "http://127.0.0.1:80"), ("::", "http://[::1]:80"),
                                           ("store.lan", "http://store.lan:80"), ("::1", "http://[::1]:80")])
def test_bound_url(host: str, url: str) -> None:
    assert bound_url(host, 80) == url

