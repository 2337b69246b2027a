"""Prometheus metrics shared by the whole process (``GET /metrics``)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy import event
from sqlalchemy.orm import Session

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "mercato_http_requests_total", "HTTP requests by route template, method and status.",
    ["route", "method", "status"], registry=REGISTRY,
)
HTTP_ERRORS = Counter(
    "mercato_http_errors_total", "HTTP responses with status >= 400, by route template and code.",
    ["route", "method", "status"], registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "mercato_http_request_duration_seconds", "Request latency by route template.",
    ["route", "method"], registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

CACHE_REQUESTS = Counter(
    "mercato_cache_requests_total", "Cache lookups by cache and result (hit/miss/error: the cache was unavailable).",
    ["cache", "result"], registry=REGISTRY,
)

ORDERS = Counter(
    "mercato_orders_total", "Orders reaching an outcome (completed, failed, expired, canceled, refunded), "
    "counted once, when the transition commits.", ["outcome"], registry=REGISTRY,
)
INSTALL_TASKS = Counter(
    "mercato_install_tasks_total", "Install tasks reaching an outcome, by kind (install, upgrade, ...) and "
    "outcome (succeeded, failed, canceled), counted once, when the transition commits.",
    ["kind", "outcome"], registry=REGISTRY,
)


# --- counting on commit ---------------------------------------------------------------------------
# A state transition can run more than once (a bus delivery retried after a failure, a request
# rolled back after its change); counting it where it happens would count the attempts. Counted
# here, it is counted once: when the transaction that made it commits, never when it rolls back.

_COUNT_ON_COMMIT = "mercato_count_on_commit"


def count_on_commit(session: Any, counter: Any) -> None:
    """Increment ``counter`` (a labelled child) when ``session``'s transaction commits; not if
    it, or the savepoint the increment was asked for in, rolls back."""
    sync = getattr(session, "sync_session", session)
    scope = sync.get_nested_transaction() or sync.get_transaction()
    session.info.setdefault(_COUNT_ON_COMMIT, []).append((scope, counter))


@event.listens_for(Session, "after_commit")
def _count_committed(session: Session) -> None:
    for _scope, counter in session.info.pop(_COUNT_ON_COMMIT, ()):
        counter.inc()


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous_transaction: Any) -> None:
    pending = session.info.get(_COUNT_ON_COMMIT)
    if pending:
        session.info[_COUNT_ON_COMMIT] = [(scope, counter) for scope, counter in pending
                                          if not _inside(scope, previous_transaction)]


@event.listens_for(Session, "after_transaction_end")
def _forget_uncommitted(session: Session, transaction: Any) -> None:
    if transaction.parent is None:  # the whole transaction ended (committed, counted, or not)
        session.info.pop(_COUNT_ON_COMMIT, None)


def _inside(scope: Any, transaction: Any) -> bool:
    while scope is not None:
        if scope is transaction:
            return True
        scope = scope.parent
    return False
