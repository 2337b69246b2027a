"""Matrix rows (A2) of the operation history route: everyone signed in reads their own."""

from __future__ import annotations

from tests.access.matrix import V1, Row, signed_in, static

MATRIX_ROWS: list[Row] = [
    Row("my history", "GET", f"{V1}/me/history", signed_in(200), static(f"{V1}/me/history?type=purchase")),
    Row("my history, since after until", "GET", f"{V1}/me/history", signed_in(422),
        static(f"{V1}/me/history?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z")),
]
