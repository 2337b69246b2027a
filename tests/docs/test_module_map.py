"""docs/modules.md is the map scripts/module_map.py draws from the code: a change to the
modules' imports, event types or subscribers that is not redrawn fails here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "module_map.py"


def _module_map():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("module_map", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_modules_md_is_the_map_the_code_draws() -> None:
    module_map = _module_map()
    drawn = module_map.render()
    assert module_map.DOCS.read_text(encoding="utf-8") == drawn, (
        "docs/modules.md is stale: run PYTHONPATH=src .venv/bin/python scripts/module_map.py")
    # the saga's own steps are drawn: an empty or broken map would not show them
    assert 'wallet -. "wallet.debit_refused, wallet.debited" .-> orders' in drawn
    assert "orders --> wallet" in drawn and "listing_detail --> releases" in drawn
