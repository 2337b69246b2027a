"""Matrix rows (A2) of the sync routes."""

from __future__ import annotations

from tests.access.matrix import V1, Row, everyone, signed_in, static

MATRIX_ROWS: list[Row] = [
    Row("catalog feed", "GET", f"{V1}/sync/catalog", everyone(200), static(f"{V1}/sync/catalog")),
    Row("catalog feed, forged cursor", "GET", f"{V1}/sync/catalog", everyone(422),
        static(f"{V1}/sync/catalog?cursor=forged")),
    Row("catalog diff", "POST", f"{V1}/sync/catalog/diff", everyone(200),
        static(f"{V1}/sync/catalog/diff", json={"hashes": {}})),
    Row("my state feed", "GET", f"{V1}/sync/me", signed_in(200), static(f"{V1}/sync/me")),
    Row("my state feed, forged cursor", "GET", f"{V1}/sync/me", signed_in(422), static(f"{V1}/sync/me?cursor=forged")),
]
