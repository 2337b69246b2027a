"""Matrix rows (A2) of the market routes: only admins manage sources (a link-local URL is
refused by the SSRF guard: 422); anyone browses mirrored listings."""

from __future__ import annotations

import uuid

from tests.access.test_matrix import ADMINS, V1, Row, everyone, only, static

NOWHERE = uuid.UUID(int=0)

MATRIX_ROWS: list[Row] = [
    Row("list market sources", "GET", f"{V1}/admin/market-sources", only(*ADMINS, status=200),
        static(f"{V1}/admin/market-sources")),
    Row("add a cloud-metadata market source", "POST", f"{V1}/admin/market-sources", only(*ADMINS, status=422),
        static(f"{V1}/admin/market-sources", json={"name": "Local", "url": "http://169.254.169.254"})),
    Row("delete a missing market source", "DELETE", f"{V1}/admin/market-sources/{{source_id}}",
        only(*ADMINS, status=404), static(f"{V1}/admin/market-sources/{NOWHERE}")),
    Row("sync a missing market source", "POST", f"{V1}/admin/market-sources/{{source_id}}/sync",
        only(*ADMINS, status=404), static(f"{V1}/admin/market-sources/{NOWHERE}/sync")),
    Row("browse mirrored listings", "GET", f"{V1}/market/listings", everyone(200), static(f"{V1}/market/listings")),
    Row("a missing mirrored listing", "GET", f"{V1}/market/listings/{{listing_id}}", everyone(404),
        static(f"{V1}/market/listings/{NOWHERE}")),
]
