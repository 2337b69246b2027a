"""W6: the storefront pages answer within the API's own p95 plus 20 ms (QUALITY.md W6).

    python -m bench.pages [--quick] [--rounds 3] [--duration 5] [--skip-sqlite] [--skip-postgres]
                          [--big-listings 100000] [--skip-big] [--pg-url postgresql+asyncpg://…]
                          [--tool wrk|python] [--json out.json]

For each database (the embedded default, SQLite, and PostgreSQL): a fresh demo store
(``mercato migrate`` + ``mercato demo``), one Mercato server (uvicorn, one worker, production
settings, as the other benchmarks), started, then left until the demo's events are delivered
(``wait_bus_drained``, ``wait_idle``). Then, round after round, each target in turn (a page
and the API call it makes measured back to back, so a noisy neighbour hits both alike):

    listing-page  /listings/hello-notes               listing-api  /api/v1/listings/hello-notes
    search-page   /search?q=notes&kind=app            search-api   /api/v1/listings?q=notes&kind=app
    search2-page  /search?kind=app&price=free&sort=popular
                                                      search2-api  /api/v1/listings?kind=app&price=free&sort=popular
    home          /                                   (no API equivalent: reported only)

each measured twice: one client sending its requests one after the other (``c1``), then four
clients (``c4``), keep-alive, closed loop (wrk when installed, else bench/load.py), p50 and p95
of each, and the server process's CPU time per request over both (``/proc/<pid>/stat``).
Figures are medians over the rounds, after a warm-up.

Then ``big``: a PostgreSQL store (``--big-sqlite`` adds SQLite) with bench/search.py's 100k
generated listings (the same generator and bulk load as PERF-3), and a rotation of 200 of
PERF-3's queries (its query mix, as URL parameters both take: q, kind, category, price,
delivery, platform, sort) sent to the search page and to the API alike.

The verdict, per database and pair, on the four-client p95: page p95 <= API p95 + 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import httpx

from bench.load import have_wrk, run_load
from bench.servers import (
    DEFAULT_PG_URL,
    Server,
    Store,
    cpu_seconds,
    demo_store,
    postgres_database,
    running,
    wait_idle,
)

BAR_MS = 20.0
LISTING = "hello-notes"
SEARCH_ONE = {"q": "notes", "kind": "app"}
SEARCH_TWO = {"kind": "app", "price": "free", "sort": "popular"}
PAIRS = (("listing", "listing-page", "listing-api"), ("search", "search-page", "search-api"),
         ("search2", "search2-page", "search2-api"))


def _log(message: str) -> None:
    print(f"[pages] {message}", file=sys.stderr, flush=True)


def _query(params: dict[str, str]) -> str:
    return "?" + urllib.parse.urlencode(params)


def demo_targets() -> dict[str, list[str]]:
    """Each target's path(s) on a demo store."""
    return {
        "listing-page": [f"/listings/{LISTING}"], "listing-api": [f"/api/v1/listings/{LISTING}"],
        "search-page": ["/search" + _query(SEARCH_ONE)], "search-api": ["/api/v1/listings" + _query(SEARCH_ONE)],
        "search2-page": ["/search" + _query(SEARCH_TWO)], "search2-api": ["/api/v1/listings" + _query(SEARCH_TWO)],
        "home": ["/"],
    }


def big_queries(listings: int, count: int = 200) -> tuple[Any, list[dict[str, str]]]:
    """bench/search.py's catalogue and the first ``count`` queries of its mix that a URL of both
    the page and the API can say (no publisher filter, no cursor)."""
    from bench import search

    catalogue = search.generate(listings)
    slugs = {c["id"]: c["slug"] for c in catalogue.categories}
    out: list[dict[str, str]] = []
    for _label, query in search.query_mix(catalogue, count * 3):
        if query.publisher_id is not None:
            continue
        params = {"q": query.q, "kind": query.kind, "category": slugs.get(query.category_id),
                  "price": query.price, "delivery": query.delivery, "platform": query.platform,
                  "sort": query.sort or ("relevance" if query.q else "popular")}
        out.append({k: v for k, v in params.items() if v})
        if len(out) == count:
            break
    return catalogue, out


def _check(server: Server, targets: dict[str, list[str]]) -> None:
    """Every target answers 200 (the pages HTML, the API JSON) before anything is timed."""
    with httpx.Client(base_url=server.base_url, timeout=120) as client:
        for name, paths in targets.items():
            for path in paths[:20]:
                response = client.get(path)
                if response.status_code != 200:
                    raise RuntimeError(f"{name} {path} answered {response.status_code}: {response.text[:300]}")
                wanted = "text/html" if name.endswith("page") or name == "home" else "application/json"
                if not response.headers.get("content-type", "").startswith(wanted):
                    raise RuntimeError(f"{name} {path} answered {response.headers.get('content-type')}")


def _measure(server: Server, paths: list[str], *, duration: float, tool: str) -> dict[str, Any]:
    url = server.base_url + paths[0]
    rotation = paths if len(paths) > 1 else None
    cpu_before = cpu_seconds(server.pid)
    single = run_load(url, connections=1, threads=1, duration=duration, tool=tool, paths=rotation)
    four = run_load(url, connections=4, threads=1, duration=duration, tool=tool, paths=rotation)
    cpu = cpu_seconds(server.pid) - cpu_before
    requests = single.requests + four.requests
    return {"p50_ms_c1": single.p50_ms, "p95_ms_c1": single.p95_ms, "p50_ms_c4": four.p50_ms,
            "p95_ms_c4": four.p95_ms, "rps_c1": single.rps, "rps_c4": four.rps, "requests": requests,
            "errors": single.errors + four.errors, "cpu_us_per_request": round(cpu / max(1, requests) * 1e6, 1)}


def measure_rounds(server: Server, targets: dict[str, list[str]], *, rounds: int, duration: float,
                   warmup: float, tool: str, label: str) -> dict[str, Any]:
    _check(server, targets)
    for paths in targets.values():
        run_load(server.base_url + paths[0], connections=4, threads=1, duration=warmup, tool=tool,
                 paths=paths if len(paths) > 1 else None)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    loads: list[tuple[float, float, float]] = []
    for number in range(1, rounds + 1):
        for name, paths in targets.items():
            result = _measure(server, paths, duration=duration, tool=tool)
            runs[name].append(result)
            _log(f"{label} round {number}/{rounds} {name}: c1 p50={result['p50_ms_c1']:.2f} "
                 f"p95={result['p95_ms_c1']:.2f} ms, c4 p50={result['p50_ms_c4']:.2f} "
                 f"p95={result['p95_ms_c4']:.2f} ms, "
                 f"{result['cpu_us_per_request']:.0f} µs CPU/req" + (f", {result['errors']} ERRORS"
                                                                     if result["errors"] else ""))
        loads.append(tuple(round(x, 2) for x in os.getloadavg()))  # type: ignore[arg-type]
    keys = ("p50_ms_c1", "p95_ms_c1", "p50_ms_c4", "p95_ms_c4", "rps_c4", "cpu_us_per_request")
    summary = {name: {key: round(statistics.median(r[key] for r in results), 2) for key in keys}
               | {"errors": sum(r["errors"] for r in results)} for name, results in runs.items()}
    return {"summary": summary, "runs": runs, "loadavg": loads}


def verdicts(summary: dict[str, Any], pairs: tuple[tuple[str, str, str], ...]) -> dict[str, Any]:
    out = {}
    for key, page, api in pairs:
        if page in summary and api in summary:
            page_p95, api_p95 = summary[page]["p95_ms_c4"], summary[api]["p95_ms_c4"]
            out[key] = {"page_p95_ms": page_p95, "api_p95_ms": api_p95, "margin_ms": round(page_p95 - api_p95, 2),
                        "pass": page_p95 <= api_p95 + BAR_MS and not summary[page]["errors"]}
    return out


def _serve(store: Store, name: str) -> Server:
    return store.server(name)


def bench_demo(database: str, *, pg_url: str, rounds: int, duration: float, warmup: float,
               tool: str) -> dict[str, Any]:
    _log(f"preparing a demo store on {database}")
    with demo_store(database, pg_url) as store:
        server = _serve(store, f"pages-{database}")
        with running(server):
            drained = store.wait_bus_drained()
            idle = wait_idle(server.pid)
            _log(f"{database}: the demo's events delivered after {drained:.0f} s, idle after {idle:.0f} s more")
            measured = measure_rounds(server, demo_targets(), rounds=rounds, duration=duration, warmup=warmup,
                                      tool=tool, label=database)
        measured["warnings"] = store.warnings
    measured["verdicts"] = verdicts(measured["summary"], PAIRS)
    return measured


async def _seed_big(url: str, catalogue: Any) -> float:
    from bench import search
    from mercato.kit.db import Database

    db = Database(url)
    try:
        return await search.load(db, catalogue)
    finally:
        await db.dispose()


def bench_big(database: str, *, listings: int, pg_url: str, rounds: int, duration: float, warmup: float,
              tool: str) -> dict[str, Any]:
    _log(f"generating {listings} listings (bench/search.py) for {database}")
    catalogue, queries = big_queries(listings)
    targets = {"big-search-page": ["/search" + _query(q) for q in queries],
               "big-search-api": ["/api/v1/listings" + _query(q) for q in queries]}

    def measure(store: Store) -> dict[str, Any]:
        store.mercato("migrate")
        url = store.database_url or f"sqlite+aiosqlite:///{store.data_dir / 'mercato.db'}"
        seconds = asyncio.run(_seed_big(url, catalogue))
        _log(f"{database}: {listings} listings loaded and indexed in {seconds:.0f} s")
        server = _serve(store, f"pages-big-{database}")
        with running(server):
            wait_idle(server.pid)
            measured = measure_rounds(server, targets, rounds=rounds, duration=duration, warmup=warmup, tool=tool,
                                      label=f"{database} 100k")
        measured["load_s"] = round(seconds, 1)
        return measured

    with tempfile.TemporaryDirectory(prefix="mercato-bench-pages-") as directory:
        if database == "sqlite":
            measured = measure(Store(None, Path(directory)))
        else:
            with postgres_database(pg_url) as url:
                measured = measure(Store(url, Path(directory)))
    measured["listings"] = listings
    measured["queries"] = len(queries)
    measured["verdicts"] = verdicts(measured["summary"], (("big_search", "big-search-page", "big-search-api"),))
    return measured


def run(*, quick: bool = False, rounds: int | None = None, duration: float | None = None,
        pg_url: str | None = DEFAULT_PG_URL, sqlite: bool = True, big_listings: int = 100_000,
        big_sqlite: bool = False, tool: str | None = None) -> dict[str, Any]:
    """W6 on SQLite and PostgreSQL (``pg_url`` None: SQLite only), and on 100k listings; the raw numbers."""
    rounds = rounds or (2 if quick else 3)
    duration = duration or (2.0 if quick else 5.0)
    warmup = 1.0 if quick else 2.0
    tool = tool or ("wrk" if have_wrk() else "python")
    results: dict[str, Any] = {"tool": tool, "rounds": rounds, "duration_s": duration, "bar_ms": BAR_MS,
                               "listing": LISTING, "search": SEARCH_ONE, "search2": SEARCH_TWO, "databases": {}}
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    databases = (["sqlite"] if sqlite else []) + (["postgresql"] if pg_url else [])
    for database in databases:
        results["databases"][database] = bench_demo(database, pg_url=pg_url or DEFAULT_PG_URL, rounds=rounds,
                                                    duration=duration, warmup=warmup, tool=tool)
    if big_listings:
        results["big"] = {}
        for database in (["sqlite"] if big_sqlite else []) + (["postgresql"] if pg_url else []):
            results["big"][database] = bench_big(database, listings=big_listings, pg_url=pg_url or DEFAULT_PG_URL,
                                                 rounds=rounds, duration=duration, warmup=warmup, tool=tool)
    results["started_at"] = started
    every = [v for db in results["databases"].values() for v in db["verdicts"].values()]
    every += [v for db in results.get("big", {}).values() for v in db["verdicts"].values()]
    results["pass"] = bool(every) and all(v["pass"] for v in every)
    return results


def report_lines(results: dict[str, Any]) -> list[str]:
    """``W6 …`` (the worst margin of each kind of page over every database) and detail lines."""
    def worst(kinds: tuple[str, ...]) -> dict[str, Any] | None:
        found = [(db, v) for source in ("databases", "big") for db, data in results.get(source, {}).items()
                 for k, v in data["verdicts"].items() if k in kinds]
        return max(found, key=lambda item: item[1]["margin_ms"])[1] if found else None

    listing, searching = worst(("listing",)), worst(("search", "search2", "big_search"))
    head = "W6"
    for name, verdict in (("listing", listing), ("search", searching)):
        if verdict:
            head += f" {name}_page_p95={verdict['page_p95_ms']:.1f}ms api_p95={verdict['api_p95_ms']:.1f}ms"
    lines = [f"{head} bar=api+{BAR_MS:g}ms {'PASS' if results['pass'] else 'FAIL'}"]
    for source in ("databases", "big"):
        for database, data in results.get(source, {}).items():
            s = data["summary"]
            where = database + (f" {data['listings']} listings" if source == "big" else " demo")
            for name, t in s.items():
                lines.append(f"  {where} {name}: c1 p50={t['p50_ms_c1']:.1f} p95={t['p95_ms_c1']:.1f} ms, "
                             f"c4 p50={t['p50_ms_c4']:.1f} p95={t['p95_ms_c4']:.1f} ms, "
                             f"{t['cpu_us_per_request']:.0f} µs CPU/req, {t['rps_c4']:.0f} req/s at c4"
                             + (f", {t['errors']} ERRORS" if t["errors"] else ""))
            for key, v in data["verdicts"].items():
                lines.append(f"  {where} {key}: page p95 {v['page_p95_ms']:.1f} ms vs API {v['api_p95_ms']:.1f} ms "
                             f"(+{v['margin_ms']:.1f}) {'PASS' if v['pass'] else 'FAIL'}")
            lines.append(f"  {where} load average after each round: {data['loadavg']}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 2 s runs (a smoke test, not figures)")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--duration", type=float, help="seconds per target and concurrency in each round")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="an admin URL of the PostgreSQL server")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--big-listings", type=int, default=100_000)
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--big-sqlite", action="store_true", help="also the 100k search on SQLite")
    parser.add_argument("--tool", choices=["wrk", "python"])
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = parser.parse_args()
    results = run(quick=args.quick, rounds=args.rounds, duration=args.duration,
                  pg_url=None if args.skip_postgres else args.pg_url, sqlite=not args.skip_sqlite,
                  big_listings=0 if args.skip_big else args.big_listings, big_sqlite=args.big_sqlite,
                  tool=args.tool)
    for line in report_lines(results):
        print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
