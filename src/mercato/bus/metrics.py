"""Bus metrics (Prometheus)."""

from prometheus_client import Counter, Gauge, Histogram

from mercato.kit.metrics import REGISTRY

DELIVERIES = Counter("mercato_bus_deliveries_total", "Deliveries by subscriber and outcome.",
                     ["subscriber", "outcome"], registry=REGISTRY)
DELIVERY_LAG = Histogram("mercato_bus_delivery_lag_seconds", "From the event's time to its handling, per subscriber.",
                         ["subscriber"], registry=REGISTRY,
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
OUTBOX_BACKLOG = Gauge("mercato_bus_outbox_backlog", "Events not yet fanned out to subscribers.", registry=REGISTRY)
PENDING = Gauge("mercato_bus_pending_deliveries", "Deliveries not yet processed, per subscriber.",
                ["subscriber"], registry=REGISTRY)
DEAD_LETTERS = Gauge("mercato_bus_dead_letters", "Dead letters per subscriber.", ["subscriber"], registry=REGISTRY)
SWEEP_RUNS = Counter("mercato_sweep_runs_total", "Scheduled sweep runs by name and result.", ["sweep", "result"],
                     registry=REGISTRY)
BROKER_UP = Gauge("mercato_broker_up", "1 when this process reaches its broker (on NATS: and the stream exists), "
                  "0 when not; checked at each scrape. Absent without a broker.", registry=REGISTRY)
