"""PERF-1 and PERF-2: listing detail, warm (cached, ETag) and cold (database).

    python -m bench.catalog [--quick] [--rounds 3] [--duration 10] [--pg-url postgresql+asyncpg://…]
                            [--tool wrk|python] [--json out.json]

One run: a fresh PostgreSQL database (``mercato migrate`` + ``mercato demo``), then five
uvicorn processes with the same settings (one worker, log level warning), all started
before measuring and measured in turn, round after round, so that a noisy neighbour
hits baselines and Mercato alike:

    hello          FastAPI hello-world JSON                             (PERF-1 baseline)
    mercato-warm   GET /api/v1/listings/{slug}, default cache (30 s)   → 200 from the cache
    mercato-304    the same with If-None-Match: <its ETag>              → 304
    pk-read        FastAPI + bare asyncpg primary-key read of one row   (PERF-2 baseline)
    mercato-cold   the same detail with MERCATO_CATALOG_CACHE_SECONDS=0 → built from the database

Each target: throughput at 64 connections (wrk -t2 -c64, as QUALITY.md's reference
figures), p99 latency at 4 connections (wrk -t1 -c4), and the server process's CPU time
per request over the throughput run (``/proc/<pid>/stat``). Medians over the rounds,
after a warm-up. Every ratio is the median of the per-round ratios (mercato ÷ baseline
measured back to back in the same round), so a noisy neighbour in one round does not pair
one target's good round with the other's bad one; CPU µs per request is printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import httpx

from bench.baselines import PK_TABLE, create_pk_table
from bench.load import have_wrk, run_load
from bench.servers import (
    DEFAULT_PG_URL,
    Server,
    asyncpg_dsn,
    cpu_seconds,
    demo_store,
    round_ratios,
    running,
    wait_idle,
)

LISTING = "hello-notes"  # a demo listing with three versions, a category and related listings
BARS = {"warm_ratio": 0.7, "revalidate_ratio": 0.8, "warm_p99_ms": 10.0, "cold_ratio": 0.8, "cold_p99_ms": 15.0}


def _log(message: str) -> None:
    print(f"[catalog] {message}", file=sys.stderr, flush=True)


def _cache_misses(server: Server) -> float | None:
    """Mercato's catalog cache misses so far (its Prometheus metrics); None for a baseline."""
    if not server.name.startswith("mercato"):
        return None
    text = httpx.get(server.base_url + "/metrics", timeout=60).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("mercato_cache_requests_total{") and 'result="miss"' in line)


def _measure(server: Server, url: str, headers: dict[str, str], *, duration: float, tool: str) -> dict[str, Any]:
    misses_before = _cache_misses(server)
    cpu_before = cpu_seconds(server.pid)
    throughput = run_load(url, connections=64, duration=duration, headers=headers, tool=tool)
    cpu = cpu_seconds(server.pid) - cpu_before
    latency = run_load(url, connections=4, duration=duration, headers=headers, threads=1, tool=tool)
    misses = _cache_misses(server)
    return {"rps": throughput.rps, "requests": throughput.requests, "errors": throughput.errors + latency.errors,
            "cpu_us_per_request": round(cpu / max(1, throughput.requests) * 1e6, 1),
            "p50_ms_c64": throughput.p50_ms, "p99_ms_c64": throughput.p99_ms,
            "p50_ms_c4": latency.p50_ms, "p99_ms_c4": latency.p99_ms, "rps_c4": latency.rps,
            "cache_misses": None if misses is None or misses_before is None else int(misses - misses_before)}


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(run[key] for run in runs), 3)


def _check(store_url: str, warm: Server, cold: Server) -> str:
    """The targets answer what they should; returns the listing's ETag."""
    path = f"/api/v1/listings/{LISTING}"
    client = httpx.Client(timeout=120)
    first = client.get(warm.base_url + path)
    first.raise_for_status()
    etag = first.headers["etag"]
    cached = client.get(warm.base_url + path)
    built = client.get(cold.base_url + path)
    built.raise_for_status()
    if cached.json() != built.json() or cached.headers["etag"] != built.headers["etag"]:
        raise RuntimeError("the cached and the freshly built detail differ")
    revalidated = client.get(warm.base_url + path, headers={"If-None-Match": etag})
    if revalidated.status_code != 304:
        raise RuntimeError(f"If-None-Match answered {revalidated.status_code}, not 304")
    return etag


def run(*, quick: bool = False, rounds: int | None = None, duration: float | None = None,
        pg_url: str = DEFAULT_PG_URL, tool: str | None = None) -> dict[str, Any]:
    """PERF-1 and PERF-2 on PostgreSQL; the raw numbers and the verdicts."""
    rounds = rounds or 3
    duration = duration or (3.0 if quick else 10.0)
    warmup = 1.0 if quick else 3.0
    tool = tool or ("wrk" if have_wrk() else "python")
    _log(f"preparing a demo store on PostgreSQL (load generator: {tool})")
    with demo_store("postgresql", pg_url) as store:
        assert store.database_url is not None
        dsn = asyncpg_dsn(store.database_url)
        asyncio.run(create_pk_table(dsn))
        hello = Server("hello", "bench.baselines:hello", ready_path="/hello", log_dir=store.data_dir)
        pk = Server("pk-read", "bench.baselines:pk_read", ready_path="/items/1", log_dir=store.data_dir,
                    env={"BENCH_PG_DSN": dsn, "BENCH_PK_TABLE": PK_TABLE})
        warm = store.server("mercato-warm")
        cold = store.server("mercato-cold", MERCATO_CATALOG_CACHE_SECONDS="0")
        with running(hello, pk, warm, cold):
            waited = max(wait_idle(warm.pid), wait_idle(cold.pid))
            _log(f"the embedded bus settled after {waited:.0f} s (the demo's events delivered)")
            etag = _check(store.database_url, warm, cold)
            detail = f"/api/v1/listings/{LISTING}"
            targets: dict[str, tuple[Server, str, dict[str, str]]] = {
                "hello": (hello, hello.base_url + "/hello", {}),
                "mercato-warm": (warm, warm.base_url + detail, {}),
                "mercato-304": (warm, warm.base_url + detail, {"If-None-Match": etag}),
                "pk-read": (pk, pk.base_url + "/items/42", {}),
                "mercato-cold": (cold, cold.base_url + detail, {}),
            }
            for _, url, headers in targets.values():
                run_load(url, connections=64, duration=warmup, headers=headers, tool=tool)
            measured: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
            for round_number in range(1, rounds + 1):
                for name, (server, url, headers) in targets.items():
                    result = _measure(server, url, headers, duration=duration, tool=tool)
                    measured[name].append(result)
                    _log(f"round {round_number}/{rounds} {name}: {result['rps']:.0f} req/s, "
                         f"p99@4={result['p99_ms_c4']:.2f} ms, {result['cpu_us_per_request']:.0f} µs CPU/req"
                         + (f", {result['cache_misses']} cache misses" if result["cache_misses"] else "")
                         + (f", {result['errors']} ERRORS" if result["errors"] else ""))
        log_bytes = warm.log_path.stat().st_size if warm.log_path.exists() else 0
        warnings = list(store.warnings)
    summary = {name: {"rps": _median(runs, "rps"), "p99_ms_c4": _median(runs, "p99_ms_c4"),
                      "p50_ms_c4": _median(runs, "p50_ms_c4"),
                      "cpu_us_per_request": _median(runs, "cpu_us_per_request"),
                      "errors": sum(r["errors"] for r in runs)}
               for name, runs in measured.items()}
    errors = sum(s["errors"] for s in summary.values())

    def per_round(mercato: str, baseline: str) -> list[float]:
        return round_ratios(measured[mercato], measured[baseline], "rps")

    warm_ratio = statistics.median(per_round("mercato-warm", "hello"))
    revalidate_ratio = statistics.median(per_round("mercato-304", "hello"))
    cold_ratio = statistics.median(per_round("mercato-cold", "pk-read"))

    def cpu_ratio(mercato: str, baseline: str) -> float:  # what the ratio would be if CPU were the only limit
        return round(summary[baseline]["cpu_us_per_request"] / summary[mercato]["cpu_us_per_request"], 3)

    perf1 = {"warm_ratio": round(warm_ratio, 3), "revalidate_ratio": round(revalidate_ratio, 3),
             "warm_ratio_per_round": per_round("mercato-warm", "hello"),
             "revalidate_ratio_per_round": per_round("mercato-304", "hello"),
             "warm_cpu_ratio": cpu_ratio("mercato-warm", "hello"),
             "revalidate_cpu_ratio": cpu_ratio("mercato-304", "hello"),
             "warm_p99_ms_c4": summary["mercato-warm"]["p99_ms_c4"],
             "revalidate_p99_ms_c4": summary["mercato-304"]["p99_ms_c4"],
             "cpu_us_per_request": {k: summary[k]["cpu_us_per_request"]
                                    for k in ("hello", "mercato-warm", "mercato-304")}}
    perf1["pass"] = bool(errors == 0 and warm_ratio >= BARS["warm_ratio"]
                         and revalidate_ratio >= BARS["revalidate_ratio"]
                         and max(perf1["warm_p99_ms_c4"], perf1["revalidate_p99_ms_c4"]) < BARS["warm_p99_ms"])
    perf2 = {"cold_ratio": round(cold_ratio, 3), "cold_p99_ms_c4": summary["mercato-cold"]["p99_ms_c4"],
             "cold_ratio_per_round": per_round("mercato-cold", "pk-read"),
             "cold_cpu_ratio": cpu_ratio("mercato-cold", "pk-read"),
             "cpu_us_per_request": {k: summary[k]["cpu_us_per_request"] for k in ("pk-read", "mercato-cold")}}
    perf2["pass"] = bool(errors == 0 and cold_ratio >= BARS["cold_ratio"]
                         and perf2["cold_p99_ms_c4"] < BARS["cold_p99_ms"])
    return {"database": "postgresql", "listing": LISTING, "tool": tool, "rounds": rounds, "duration_s": duration,
            "connections": {"throughput": 64, "latency": 4}, "bars": BARS, "warnings": warnings,
            "mercato_log_bytes": log_bytes, "summary": summary, "runs": measured, "PERF-1": perf1, "PERF-2": perf2}


def report_lines(results: dict[str, Any]) -> list[str]:
    p1, p2, s = results["PERF-1"], results["PERF-2"], results["summary"]
    return [
        f"PERF-1 ratio={p1['warm_ratio']:.2f} bar={BARS['warm_ratio']} revalidate_ratio={p1['revalidate_ratio']:.2f} "
        f"bar={BARS['revalidate_ratio']} cpu={s['mercato-warm']['cpu_us_per_request']:.0f}/"
        f"{s['mercato-304']['cpu_us_per_request']:.0f}µs/req (hello {s['hello']['cpu_us_per_request']:.0f}) "
        f"p99={max(p1['warm_p99_ms_c4'], p1['revalidate_p99_ms_c4']):.2f}ms "
        f"bar={BARS['warm_p99_ms']:g}ms {'PASS' if p1['pass'] else 'FAIL'}",
        f"  warm {s['mercato-warm']['rps']:.0f} req/s, 304 {s['mercato-304']['rps']:.0f} req/s vs hello "
        f"{s['hello']['rps']:.0f} req/s; CPU µs/req warm {s['mercato-warm']['cpu_us_per_request']:.0f}, "
        f"304 {s['mercato-304']['cpu_us_per_request']:.0f}, hello {s['hello']['cpu_us_per_request']:.0f} "
        f"(CPU ratios {p1['warm_cpu_ratio']:.2f} / {p1['revalidate_cpu_ratio']:.2f}); per-round ratios "
        f"{p1['warm_ratio_per_round']} / {p1['revalidate_ratio_per_round']}; p99@4 warm "
        f"{p1['warm_p99_ms_c4']:.1f} ms, 304 {p1['revalidate_p99_ms_c4']:.1f} ms, "
        f"hello {s['hello']['p99_ms_c4']:.1f} ms",
        f"PERF-2 ratio={p2['cold_ratio']:.2f} bar={BARS['cold_ratio']} "
        f"cpu={s['mercato-cold']['cpu_us_per_request']:.0f}µs/req (PK read {s['pk-read']['cpu_us_per_request']:.0f}) "
        f"p99={p2['cold_p99_ms_c4']:.2f}ms "
        f"bar={BARS['cold_p99_ms']:g}ms {'PASS' if p2['pass'] else 'FAIL'}",
        f"  cold {s['mercato-cold']['rps']:.0f} req/s vs asyncpg PK read {s['pk-read']['rps']:.0f} req/s; "
        f"CPU µs/req cold {s['mercato-cold']['cpu_us_per_request']:.0f}, "
        f"PK read {s['pk-read']['cpu_us_per_request']:.0f} "
        f"(CPU ratio {p2['cold_cpu_ratio']:.2f}); per-round ratios {p2['cold_ratio_per_round']}; p99@4 PK read "
        f"{s['pk-read']['p99_ms_c4']:.1f} ms",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s runs instead of 10 s")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="an admin URL of the PostgreSQL server")
    parser.add_argument("--tool", choices=["wrk", "python"])
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = parser.parse_args()
    results = run(quick=args.quick, rounds=args.rounds, duration=args.duration, pg_url=args.pg_url, tool=args.tool)
    for line in report_lines(results):
        print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
