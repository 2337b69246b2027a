"""A plain-text progress bar for the agent's terminal.

On a terminal one line is redrawn in place (``\\r``); in a log file (not a TTY) a line is
written when the stage changes or every 25 %, so logs stay short and readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 24


def human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover - the loop always returns


def bar(percent: int, width: int = WIDTH) -> str:
    percent = max(0, min(100, percent))
    filled = round(width * percent / 100)
    return "[" + "#" * filled + "." * (width - filled) + f"] {percent:3d}%"


class TerminalProgress:
    """Draws the progress of one task at a time."""

    def __init__(self, stream: TextIO | None = None, *, interval: float = 0.1) -> None:
        self.stream = stream or sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval
        self._label = ""
        self._stage = ""
        self._percent = -1
        self._drawn_at = 0.0
        self._open_line = False

    def start(self, label: str) -> None:
        self._label, self._stage, self._percent = label, "", -1
        self._line(f"{label}: started", final=True)

    def update(self, percent: int, stage: str, detail: str = "") -> None:
        now = time.monotonic()
        changed_stage = stage != self._stage
        if self.interactive:
            if not changed_stage and percent != 100 and now - self._drawn_at < self.interval:
                return
            self._line(f"{bar(percent)} {self._label}: {stage}{' ' + detail if detail else ''}", final=False)
        elif changed_stage or percent // 25 > max(self._percent, 0) // 25:
            self._line(f"{bar(percent)} {self._label}: {stage}{' ' + detail if detail else ''}", final=True)
        self._stage, self._percent, self._drawn_at = stage, percent, now

    def finish(self, outcome: str) -> None:
        self._line(f"{self._label}: {outcome}", final=True)

    def note(self, message: str) -> None:
        self._line(message, final=True)

    def _line(self, text: str, *, final: bool) -> None:
        if self.interactive:
            self.stream.write("\r\x1b[2K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._open_line = self.interactive and not final
