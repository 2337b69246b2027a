"""docs/modules.md is the map scripts/module_map.py draws from the code: a change to the
modules' imports, event types or subscribers that is not redrawn fails here. The script runs
in its own interpreter, as a person runs it: the test process registers event types and
subscribers of its own (the bus tests'), which are no part of the store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_docs_modules_md_is_the_map_the_code_draws() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    checked = subprocess.run([sys.executable, str(ROOT / "scripts" / "module_map.py"), "--check"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stderr
    drawn = (ROOT / "docs" / "modules.md").read_text(encoding="utf-8")
    # the saga's own steps are drawn: an empty or broken map would not show them
    assert 'wallet -. "wallet.debit_refused, wallet.debited" .-> orders' in drawn
    assert "orders --> wallet" in drawn and "listing_detail --> releases" in drawn
