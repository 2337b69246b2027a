"""Matrix rows (A2/A6) of the wallet routes: every signed-in principal reads their own wallet."""

from __future__ import annotations

from tests.access.matrix import V1, Row, signed_in, static

MATRIX_ROWS: list[Row] = [
    Row("my wallet", "GET", f"{V1}/wallet", signed_in(200), static(f"{V1}/wallet")),
    Row("my wallet movements", "GET", f"{V1}/wallet/transactions", signed_in(200),
        static(f"{V1}/wallet/transactions")),
]
