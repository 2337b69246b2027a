"""The journal (``ROOT/.mercato-agent/journal``): each finished task's result, kept until the store took it.

A result is written here before it is reported, so an agent killed after finishing but
before reporting reports the same result after a restart instead of doing the work twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mercato.agent.files import check_name, read_json, write_json_atomic

KEEP = 500  # entries kept (the newest), reported or not


class Journal:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def entry(self, task_id: str, attempt: int) -> Path:
        """Where the result of one attempt of a task is recorded."""
        check_name(task_id)  # an id becomes a file name
        return self.folder / f"{task_id}.{attempt}.json"

    def recorded_result(self, entry: Path) -> dict[str, Any] | None:
        recorded = read_json(entry)
        return recorded["result"] if recorded is not None and "result" in recorded else None

    def record(self, entry: Path, *, task_id: str, attempt: int | None, result: dict[str, Any]) -> None:
        write_json_atomic(entry, {"task_id": task_id, "attempt": attempt, "result": result, "reported": False,
                                  "at": time.time()})

    def mark_reported(self, entry: Path) -> None:
        recorded = read_json(entry)
        if recorded:
            write_json_atomic(entry, {**recorded, "reported": True})
        self._prune()

    def unreported(self) -> Iterator[tuple[Path, str, dict[str, Any]]]:
        """Entry, task id and result of each result the store has not taken yet, oldest name first."""
        for entry in sorted(self.folder.glob("*.json")):
            recorded = read_json(entry)
            if recorded and not recorded.get("reported") and "result" in recorded:
                yield entry, str(recorded["task_id"]), recorded["result"]

    def _prune(self) -> None:
        entries = sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for old in entries[:-KEEP]:
            old.unlink(missing_ok=True)
