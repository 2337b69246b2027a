"""Matrix rows (A2) of the market routes: only admins manage sources (a link-local URL is
refused by the SSRF guard: 422); anyone browses mirrored listings."""

from __future__ import annotations

import uuid

from tests.access.matrix import ADMINS, V1, Row, everyone, only, static

NOWHERE = uuid.UUID(int=0)

MATRIX_ROWS: list[Row] = [
    *(row
      for base, label in ((f"{V1}/admin/sources", "source"), (f"{V1}/admin/market-sources", "source (old path)"))
      for row in (
          Row(f"list market {label}s", "GET", base, only(*ADMINS, status=200), static(base)),
          Row(f"add a cloud-metadata market {label}", "POST", base, only(*ADMINS, status=422),
              static(base, json={"name": "Local", "url": "http://169.254.169.254"})),
          Row(f"delete a missing market {label}", "DELETE", f"{base}/{{source_id}}",
              only(*ADMINS, status=404), static(f"{base}/{NOWHERE}")),
          Row(f"sync a missing market {label}", "POST", f"{base}/{{source_id}}/sync",
              only(*ADMINS, status=404), static(f"{base}/{NOWHERE}/sync")),
      )),
    Row("browse mirrored listings", "GET", f"{V1}/market/listings", everyone(200), static(f"{V1}/market/listings")),
    Row("a missing mirrored listing", "GET", f"{V1}/market/listings/{{listing_id}}", everyone(404),
        static(f"{V1}/market/listings/{NOWHERE}")),
]
