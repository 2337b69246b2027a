"""The alert rules and the dashboard: promtool checks and unit-tests the rules (when installed:
Debian's `prometheus` package, which .ci/run installs), and every series the rules and the
dashboard read is one the app exports on /metrics."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.deploy.support import (
    RULE_TESTS,
    RULES,
    SCRAPE_CONFIG,
    dashboard_expressions,
    recorded_names,
    rule_expressions,
    series_names,
)

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (apt-get install prometheus)")

# Series Prometheus makes itself for every target.
PROMETHEUS_SERIES = {"up"}


def _promtool(*arguments: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL
    return subprocess.run([PROMTOOL, *arguments], capture_output=True, text=True, timeout=120, cwd=cwd,
                          check=False)


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_promtool_unit_tests_pass() -> None:
    result = _promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_checks_the_scrape_configuration() -> None:
    result = _promtool("check", "config", str(SCRAPE_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool parses expressions in rule files: the dashboard's queries, as recording rules.
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for number, expression in enumerate(dashboard_expressions().values()):
        lines += [f"      - record: dashboard:query_{number}", f"        expr: {_quoted(expression)}"]
    rules = tmp_path / "dashboard-rules.yaml"
    rules.write_text("\n".join(lines) + "\n")
    result = _promtool("check", "rules", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_rejects_a_broken_expression(tmp_path: Path) -> None:
    rules = tmp_path / "broken.yaml"
    rules.write_text('groups:\n  - name: b\n    rules:\n      - record: b:x\n        expr: "sum(rate(x[5m])"\n')
    assert _promtool("check", "rules", str(rules)).returncode != 0


def _quoted(expression: str) -> str:
    return '"' + " ".join(expression.split()).replace("\\", "\\\\").replace('"', '\\"') + '"'


def exported_series(exposition: str) -> set[str]:
    """Names of the samples a /metrics answer can carry, from its # TYPE lines (a labelled
    series with no sample yet is declared all the same)."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if not line.startswith("# TYPE "):
            continue
        _, _, name, kind = line.split(" ", 3)
        if kind == "counter":  # declared with or without its _total, depending on the client's version
            base = name.removesuffix("_total")
            names |= {f"{base}_total", f"{base}_created"}
        elif kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum", f"{name}_created"}
        elif kind == "summary":
            names |= {name, f"{name}_count", f"{name}_sum", f"{name}_created"}
        else:
            names.add(name)
    return names


def test_the_series_extraction_sees_names_not_functions_or_labels() -> None:
    assert series_names('sum by (le, route) (rate(mercato_x_bucket{route!~"/a|b", le="+Inf"}[5m])) '
                        '/ clamp_min(sum(mercato:y_5m), 1e-9) > 0.2 and on (job) up == 0') == {
        "mercato_x_bucket", "mercato:y_5m", "up"}


async def test_every_series_in_the_rules_and_the_dashboard_is_exported(client: httpx.AsyncClient) -> None:
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    exported = exported_series(answer.text) | recorded_names() | PROMETHEUS_SERIES
    expressions = {f"rule {name}": expression for name, expression in rule_expressions().items()}
    expressions |= {f"dashboard {name}": expression for name, expression in dashboard_expressions().items()}
    missing = {}
    for where, expression in expressions.items():
        names = series_names(expression)
        assert names, f"{where} reads no series: {expression}"
        if names - exported:
            missing[where] = sorted(names - exported)
    assert not missing, f"series not on /metrics: {missing}"
    # and the alerts the issue asks for are there
    assert {"MercatoBusBacklog", "MercatoBusDeliveryLag", "MercatoDeadLetters", "MercatoReviewQueueOverSLA",
            "MercatoPaymentFailureRate", "MercatoOrderSagaStuck", "MercatoApiLatencyHigh", "MercatoApi5xxRate",
            "MercatoDatabaseDown", "MercatoBrokerDown"} <= set(rule_expressions())
