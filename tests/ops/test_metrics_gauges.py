"""Gauges read from the database at each scrape (mercato/ops/gauges.py) and the metrics port of
processes without the API (``mercato worker``/``scheduler``, mercato/ops/metrics_server.py)."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import httpx

from mercato.app.runtime import Runtime
from mercato.bus.registry import load_handlers
from mercato.kit.clock import utcnow
from mercato.models import Order
from mercato.ops import gauges
from mercato.ops.metrics_server import MetricsServer
from tests.support.actors import Actor


def _value(metrics: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", metrics, re.MULTILINE)
    assert found, f"{name} is missing from /metrics"
    return float(found.group(1))


async def test_database_gauges_are_fresh_at_each_scrape(client: httpx.AsyncClient, runtime: Runtime,
                                                         user: Actor) -> None:
    metrics = (await client.get("/metrics")).text
    assert _value(metrics, "mercato_database_up") == 1
    assert _value(metrics, "mercato_orders_saga_overdue_seconds") == 0
    assert _value(metrics, "mercato_review_oldest_pending_seconds") == 0
    assert _value(metrics, "mercato_review_queue_length") == 0
    assert _value(metrics, "mercato_bus_outbox_backlog") >= 0

    # A paid order the saga has not fulfilled for 11 minutes: overdue since its payment.
    paid_at = utcnow() - timedelta(minutes=11)
    async with runtime.db.transaction() as session:
        session.add(Order(id=uuid.uuid4(), user_id=uuid.UUID(user.id), idempotency_key="stuck", status="paid",
                          currency="USD", subtotal=100, total=100, commission_bps=0, refund_window_days=14,
                          expires_at=paid_at + timedelta(minutes=30), paid_at=paid_at))
    overdue = _value((await client.get("/metrics")).text, "mercato_orders_saga_overdue_seconds")
    assert 660 <= overdue < 720


async def test_an_unreachable_database_reads_as_down(runtime: Runtime) -> None:
    broken = Runtime.from_settings(runtime.settings.model_copy(
        update={"database_url": "postgresql+asyncpg://nobody@127.0.0.1:9/none"}))
    try:
        assert await gauges.refresh(broken.db, None) is False
        assert gauges.DATABASE_UP._value.get() == 0
    finally:
        await broken.close()


async def test_the_metrics_port_serves_metrics_and_liveness(runtime: Runtime) -> None:
    server = MetricsServer("127.0.0.1", 0, before_scrape=lambda: gauges.refresh(runtime.db, load_handlers()))
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            alive = await http.get("/healthz")
            assert alive.status_code == 200 and alive.json() == {"status": "ok"}
            metrics = await http.get("/metrics")
            assert metrics.status_code == 200
            assert metrics.headers["content-type"].startswith("text/plain")
            assert _value(metrics.text, "mercato_database_up") == 1
            assert "mercato_bus_deliveries_total" in metrics.text
            assert (await http.get("/elsewhere")).status_code == 404
            assert (await http.post("/metrics")).status_code == 405
    finally:
        await server.stop()
