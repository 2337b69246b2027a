"""Matrix rows (A2/A4) of the runtime store policies routes (O4).

The matrix store is shared by every row: the accepted change sets a policy to its default
value, so no other row ever runs under changed policies.
"""

from __future__ import annotations

from tests.access.matrix import ADMINS, V1, Row, only, static

SETTINGS = f"{V1}/admin/settings"

MATRIX_ROWS: list[Row] = [
    Row("read the store settings", "GET", SETTINGS, only(*ADMINS, status=200), static(SETTINGS)),
    Row("change the store settings", "PATCH", SETTINGS, only(*ADMINS, status=200),
        static(SETTINGS, json={"refund_window_days": 14})),
    Row("change a setting that does not exist (A4)", "PATCH", SETTINGS, only(*ADMINS, status=422),
        static(SETTINGS, json={"refund_window_days": 14, "is_admin": True})),
    Row("change a setting out of bounds", "PATCH", SETTINGS, only(*ADMINS, status=422),
        static(SETTINGS, json={"commission_bps": 10_001})),
]
