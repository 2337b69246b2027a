"""Prometheus metrics shared by the whole process (``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

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
