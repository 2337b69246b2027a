"""The pure parts of bench/mixed.py (L2/L3): percentiles, the mix, the search filters, the
summary and the verdict lines. No timing here: the load itself is bench/'s business."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from bench.mixed import (
    BARS,
    SEARCH_FILTERS,
    Recorder,
    l2_passed,
    l3_passed,
    percentile,
    report_lines,
    search_params,
    weighted_picker,
)


def test_percentile_is_nearest_rank() -> None:
    values = list(range(100, 0, -1))  # 1..100, unsorted
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == (50, 95, 99)
    assert percentile(values, 100) == 100 and percentile(values, 0) == 1
    assert percentile([7.5], 95) == 7.5
    assert math.isnan(percentile([], 95))


def test_the_picker_follows_the_weights() -> None:
    pick = weighted_picker([("a", 0), ("b", 3), ("c", 1)])
    rng = random.Random(1)
    counts = Counter(pick(rng) for _ in range(4000))
    assert counts["a"] == 0
    assert 2.5 < counts["b"] / counts["c"] < 3.5
    with pytest.raises(ValueError):
        weighted_picker([("a", 0)])


def test_every_search_has_a_filter_with_a_valid_value() -> None:
    categories = ["games", "media"]
    for seed in range(300):
        params = search_params(random.Random(seed), words=["notes", "chess"], categories=categories)
        filters = {name: params[name] for name in SEARCH_FILTERS if name in params}
        assert filters, params
        assert filters.get("category", "games") in categories
        assert filters.get("price", "free") in ("free", "paid")
        assert params.get("q", "notes") in ("notes", "chess")
        assert params["limit"] in (10, 20, 50)


def test_the_summary_counts_5xx_failures_and_leaves_long_polls_out_of_the_latencies() -> None:
    recorder = Recorder()
    for ms in range(1, 101):
        recorder.record("detail", float(ms), 200, True)
    recorder.record("order", 5.0, 503, False, "database_unavailable")
    recorder.record("agent_poll", 2000.0, 200, True)  # a long poll: counted, never timed
    recorder.record("download", 3.0, "ReadTimeout", False, "timed out")
    recorder.fail_late("order", 2, "2 orders not completed")
    summary = recorder.summary()
    assert summary["requests"] == 103 and summary["timed_requests"] == 102
    assert summary["server_errors"] == 1
    assert summary["failures"] == 4 and summary["failure_share"] == pytest.approx(4 / 103)
    assert summary["p99_ms"] == 99.0  # the 2 s poll would be the p99 if it were timed
    assert summary["ops"]["order"]["failures"] == 3 and summary["ops"]["agent_poll"]["timed"] is False
    assert any("database_unavailable" in example for example in summary["failure_examples"])


def _results(*, p95: float, errors: int, share: float, drained: float | None, violations: list[str]) -> dict:
    l2 = {"requests": 1000, "server_errors": errors, "failure_share": share, "p50_ms": 10.0, "p95_ms": p95,
          "p99_ms": p95 * 2, "rps": 100.0, "serve_cpu_us_per_request": 900.0, "worker_cpu_us_per_request": None,
          "ops": {"detail": {"count": 1000, "failures": 0, "p95_ms": p95}}, "failure_examples": []}
    l3 = {"drained_in_s": drained, "violations": violations, "new_dead_letters": 0, "tasks": {"succeeded": 3},
          "orders_not_completed_in_answer": {}, "backlog_at_end": {"outbox": 0, "pending": 4}}
    l2["pass"], l3["pass"] = l2_passed(l2), l3_passed(l3)
    return {"embedded": {"l2": l2, "l3": l3, "load": {"seconds": 10.0}, "concurrency": 16,
                         "loadavg_before": (1.0, 1.0, 1.0), "loadavg_after": (2.0, 1.0, 1.0)}}


def test_the_verdicts_and_their_lines() -> None:
    good = report_lines(_results(p95=120.0, errors=0, share=0.0, drained=1.5, violations=[]))
    assert good["L2"][0] == "L2 form=embedded p95=120ms 5xx=0 failures=0.000% bar=300ms PASS"
    assert good["L3"][0].startswith("L3 form=embedded drained_in=1.5s invariants=ok")
    assert good["L3"][0].endswith("bar=30s PASS")
    assert report_lines(_results(p95=BARS["p95_ms"], errors=0, share=0.0, drained=1.5, violations=[])
                        )["L2"][0].endswith("FAIL")
    assert report_lines(_results(p95=100.0, errors=1, share=0.0, drained=1.5, violations=[]))["L2"][0].endswith("FAIL")
    assert report_lines(_results(p95=100.0, errors=0, share=0.001, drained=1.5, violations=[])
                        )["L2"][0].endswith("FAIL")
    late = report_lines(_results(p95=100.0, errors=0, share=0.0, drained=None, violations=[]))["L3"]
    assert "drained_in=timeout" in late[0] and late[0].endswith("FAIL")
    broken = report_lines(_results(p95=100.0, errors=0, share=0.0, drained=2.0, violations=["INV-3: …"]))["L3"]
    assert "invariants=VIOLATED" in broken[0] and broken[0].endswith("FAIL") and "  INV-3: …" in broken


def test_a_form_that_errored_fails_both_ids() -> None:
    lines = report_lines({"scaled": {"form": "scaled", "error": "RuntimeError: the bus did not settle"}})
    assert lines == {"L2": ["L2 form=scaled ERROR (RuntimeError: the bus did not settle) FAIL"],
                     "L3": ["L3 form=scaled ERROR (RuntimeError: the bus did not settle) FAIL"]}
