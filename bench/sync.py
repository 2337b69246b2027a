"""PERF-6: incremental catalog sync, 10k listings, 1 % changed.

    python -m bench.sync [--quick] [--rounds 3] [--duration 10] [--listings 10000]
                         [--pg-url postgresql+asyncpg://…] [--tool wrk|python] [--json out.json]

One run on a fresh PostgreSQL database (``mercato migrate``): 10,000 published listings
bulk-inserted (bench/search.py's generator), a Mercato server (one uvicorn worker) whose
start-up reconcile sweep records all of them in the change feed, and a FastAPI
hello-world with the same settings. Then, as a client would:

1. full snapshot: ``GET /api/v1/sync/catalog`` page after page (the store's page limit)
   until ``more`` is false; bytes summed, the cursor kept;
2. the "hash changed → re-fetch the whole list" model: ``GET /api/v1/listings`` pages of
   100 (no facets) over the whole catalog, as a client without a delta feed re-downloads
   it whenever the catalog's hash changes; bytes summed (the sync snapshot is the same
   model's other form and is compared too);
3. 1 % of the listings are edited through the API (``PATCH /listings/{id}``, an admin's
   token), so the feed records them from the ``listing.updated`` events as in production;
4. the delta: ``GET /api/v1/sync/catalog?cursor=…`` from the snapshot's cursor; bytes,
   and the number of changes it carries (must be exactly the edited listings);
   also ``POST /sync/catalog/diff`` with every held hash (request + answer bytes);
5. the unchanged poll: ``GET /api/v1/sync/catalog?cursor=<head>`` with ``If-None-Match``
   → 304, throughput at 64 connections against the hello-world, round after round,
   with CPU µs per request; ratio = the median of the per-round ratios 304 poll / hello.

Bars (QUALITY.md): delta bytes ≤ 2 % of the full snapshot; 304 poll ≥ 0.7 × hello-world.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.load import have_wrk, run_load
from bench.servers import (
    DEFAULT_PG_URL,
    Server,
    Store,
    cpu_seconds,
    postgres_database,
    round_ratios,
    running,
    wait_idle,
)

BARS = {"delta_share": 0.02, "poll_ratio": 0.7}
ADMIN_EMAIL = "bench-admin@mercato.test"
ADMIN_PASSWORD = "a benchmark admin passphrase"
V1 = "/api/v1"


def _log(message: str) -> None:
    print(f"[sync] {message}", file=sys.stderr, flush=True)


async def _seed(database_url: str, data_dir: Path, count: int) -> list[str]:
    """The catalog (bulk insert + search index) and an admin account; the listing ids."""
    from bench.search import generate, load
    from mercato.accounts import service as accounts
    from mercato.app.runtime import Runtime
    from mercato.config import Settings

    runtime = Runtime.from_settings(Settings(data_dir=data_dir, database_url=database_url))
    try:
        catalogue = generate(count, seed=6)
        await load(runtime.db, catalogue)
        async with runtime.db.transaction() as session:
            await accounts.create_user(session, runtime, email=ADMIN_EMAIL, password=ADMIN_PASSWORD,
                                       roles=["user", "marketplace_admin"])
        return [str(listing["id"]) for listing in catalogue.listings]
    finally:
        await runtime.close()


def _snapshot(client: httpx.Client) -> tuple[int, int, str, dict[str, str]]:
    """The whole feed from no cursor: (bytes, pages, cursor, {id: hash})."""
    total, pages, cursor, held = 0, 0, None, {}
    while True:
        response = client.get(f"{V1}/sync/catalog", params={"cursor": cursor} if cursor else None)
        response.raise_for_status()
        total, pages = total + len(response.content), pages + 1
        body = response.json()
        if pages == 1 and not body["reset"]:
            raise RuntimeError("a first sync without a cursor must be a reset snapshot")
        for change in body["changes"]:
            if change["deleted"]:
                held.pop(change["id"], None)
            else:
                held[change["id"]] = change["hash"]
        cursor = body["cursor"]
        if not body["more"]:
            return total, pages, cursor, held


def _whole_list(client: httpx.Client) -> tuple[int, int, int]:
    """Every listing through GET /listings (100 a page, no facets): (bytes, pages, listings)."""
    total, pages, seen, cursor = 0, 0, 0, None
    while True:
        params: dict[str, Any] = {"limit": 100, "facets": "false", "sort": "newest"}
        if cursor:
            params["cursor"] = cursor
        response = client.get(f"{V1}/listings", params=params)
        response.raise_for_status()
        body = response.json()
        total, pages, seen = total + len(response.content), pages + 1, seen + len(body["items"])
        cursor = body.get("next_cursor")
        if not cursor:
            return total, pages, seen


def _edit(client: httpx.Client, ids: list[str]) -> None:
    login = client.post(f"{V1}/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    login.raise_for_status()
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    for n, listing_id in enumerate(ids):
        response = client.patch(f"{V1}/listings/{listing_id}", headers=headers,
                                json={"summary": f"Edited for the sync benchmark ({n})"})
        response.raise_for_status()


def _delta(client: httpx.Client, cursor: str, expected: set[str], timeout: float = 300.0) -> httpx.Response:
    """The delta from ``cursor`` once the feed has recorded every edit (the bus runs them)."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"{V1}/sync/catalog", params={"cursor": cursor})
        response.raise_for_status()
        got = {change["id"] for change in response.json()["changes"]}
        if got == expected:
            return response
        if got - expected:
            raise RuntimeError(f"the delta carries listings that were not edited: {sorted(got - expected)[:5]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the feed recorded {len(got)} of {len(expected)} edits in {timeout:.0f} s")
        time.sleep(0.5)


def _measure(server: Server, url: str, headers: dict[str, str], *, duration: float, tool: str) -> dict[str, Any]:
    cpu_before = cpu_seconds(server.pid)
    throughput = run_load(url, connections=64, duration=duration, headers=headers, tool=tool)
    cpu = cpu_seconds(server.pid) - cpu_before
    return {"rps": throughput.rps, "requests": throughput.requests, "errors": throughput.errors,
            "p99_ms_c64": throughput.p99_ms, "cpu_us_per_request": round(cpu / max(1, throughput.requests) * 1e6, 1)}


def run(*, quick: bool = False, rounds: int | None = None, duration: float | None = None, listings: int = 10_000,
        pg_url: str = DEFAULT_PG_URL, tool: str | None = None) -> dict[str, Any]:
    rounds = rounds or 3
    duration = duration or (3.0 if quick else 10.0)
    tool = tool or ("wrk" if have_wrk() else "python")
    changed_count = max(1, listings // 100)
    with tempfile.TemporaryDirectory(prefix="mercato-bench-sync-") as directory, \
            postgres_database(pg_url) as database_url:
        data_dir = Path(directory)
        store = Store(database_url, data_dir)
        store.mercato("migrate")
        _log(f"seeding {listings} published listings")
        ids = asyncio.run(_seed(database_url, data_dir, listings))
        hello = Server("hello", "bench.baselines:hello", ready_path="/hello", log_dir=data_dir)
        mercato = store.server("mercato-sync")
        with running(hello, mercato):
            waited = wait_idle(mercato.pid, timeout=1800)
            _log(f"the start-up reconcile filled the feed; the server settled after {waited:.0f} s")
            client = httpx.Client(base_url=mercato.base_url, timeout=300)
            # A CPU-idle test misreads a starved process on a loaded machine: wait until the
            # feed holds every listing (failing loudly at the timeout).
            deadline = time.monotonic() + 1800
            while True:
                snapshot_bytes, snapshot_pages, cursor, held = _snapshot(client)
                if len(held) == listings or time.monotonic() > deadline:
                    break
                time.sleep(2)
            if len(held) != listings:
                raise RuntimeError(f"the snapshot holds {len(held)} listings, not {listings}")
            list_bytes, list_pages, list_count = _whole_list(client)
            _log(f"snapshot {snapshot_bytes} B in {snapshot_pages} pages; GET /listings {list_bytes} B "
                 f"in {list_pages} pages ({list_count} listings)")
            edited = random.Random(7).sample(ids, changed_count)
            _edit(client, edited)
            delta = _delta(client, cursor, set(edited))
            delta_body = delta.json()
            diff_request = json.dumps({"hashes": held}).encode()
            diff = client.post(f"{V1}/sync/catalog/diff", content=diff_request,
                               headers={"Content-Type": "application/json"})
            diff.raise_for_status()
            if {c["id"] for c in diff.json()["changed"]} != set(edited):
                raise RuntimeError("the diff does not name exactly the edited listings")
            head = delta_body["cursor"]
            first_poll = client.get(f"{V1}/sync/catalog", params={"cursor": head})
            etag = first_poll.headers["etag"]
            poll_url = f"{mercato.base_url}{V1}/sync/catalog?cursor={head}"
            check = client.get(poll_url, headers={"If-None-Match": etag})
            if check.status_code != 304:
                raise RuntimeError(f"the unchanged poll answered {check.status_code}, not 304")
            targets = {"hello": (hello, hello.base_url + "/hello", {}),
                       "sync-304": (mercato, poll_url, {"If-None-Match": etag})}
            for _, url, headers in targets.values():
                run_load(url, connections=64, duration=1.0 if quick else 3.0, headers=headers, tool=tool)
            measured: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
            for round_number in range(1, rounds + 1):
                for name, (server, url, headers) in targets.items():
                    result = _measure(server, url, headers, duration=duration, tool=tool)
                    measured[name].append(result)
                    _log(f"round {round_number}/{rounds} {name}: {result['rps']:.0f} req/s, "
                         f"{result['cpu_us_per_request']:.0f} µs CPU/req"
                         + (f", {result['errors']} ERRORS" if result["errors"] else ""))
    summary = {name: {"rps": round(statistics.median(r["rps"] for r in runs), 1),
                      "cpu_us_per_request": round(statistics.median(r["cpu_us_per_request"] for r in runs), 1),
                      "p99_ms_c64": round(statistics.median(r["p99_ms_c64"] for r in runs), 2),
                      "errors": sum(r["errors"] for r in runs)} for name, runs in measured.items()}
    poll_ratios = round_ratios(measured["sync-304"], measured["hello"], "rps")
    poll_ratio = statistics.median(poll_ratios)
    delta_bytes = len(delta.content)
    delta_share = delta_bytes / snapshot_bytes
    perf6 = {"delta_bytes": delta_bytes, "delta_changes": len(delta_body["changes"]),
             "snapshot_bytes": snapshot_bytes, "snapshot_pages": snapshot_pages,
             "whole_list_bytes": list_bytes, "whole_list_pages": list_pages,
             "diff_request_bytes": len(diff_request), "diff_response_bytes": len(diff.content),
             "delta_share_of_snapshot": round(delta_share, 5),
             "delta_share_of_whole_list": round(delta_bytes / list_bytes, 5),
             "poll_ratio": round(poll_ratio, 3),
             "poll_ratio_per_round": poll_ratios,
             "poll_cpu_ratio": round(summary["hello"]["cpu_us_per_request"]
                                     / summary["sync-304"]["cpu_us_per_request"], 3)}
    errors = sum(s["errors"] for s in summary.values())
    perf6["pass"] = bool(errors == 0 and delta_share <= BARS["delta_share"] and poll_ratio >= BARS["poll_ratio"])
    return {"database": "postgresql", "listings": listings, "changed": changed_count, "tool": tool,
            "rounds": rounds, "duration_s": duration, "bars": BARS, "summary": summary, "runs": measured,
            "PERF-6": perf6, "run_id": uuid.uuid4().hex[:8]}


def report_lines(results: dict[str, Any]) -> list[str]:
    p, s = results["PERF-6"], results["summary"]
    verdict = (f"PERF-6 delta_share={p['delta_share_of_snapshot'] * 100:.2f}% bar={BARS['delta_share'] * 100:g}% "
               f"poll_ratio={p['poll_ratio']:.2f} bar={BARS['poll_ratio']} "
               f"cpu={s['sync-304']['cpu_us_per_request']:.0f}µs/req (hello {s['hello']['cpu_us_per_request']:.0f}) "
               f"p99@64={s['sync-304']['p99_ms_c64']:.1f}ms {'PASS' if p['pass'] else 'FAIL'}")
    sizes = (f"  {results['listings']} listings, {results['changed']} edited: delta {p['delta_bytes']} B "
             f"({p['delta_changes']} changes) vs snapshot {p['snapshot_bytes']} B ({p['snapshot_pages']} pages) and "
             f"vs re-fetching the list {p['whole_list_bytes']} B ({p['whole_list_pages']} pages of GET /listings: "
             f"{p['delta_share_of_whole_list'] * 100:.2f}%); diff {p['diff_request_bytes']} B up, "
             f"{p['diff_response_bytes']} B down")
    poll = (f"  304 poll {s['sync-304']['rps']:.0f} req/s vs hello {s['hello']['rps']:.0f} req/s; CPU µs/req "
            f"{s['sync-304']['cpu_us_per_request']:.0f} vs {s['hello']['cpu_us_per_request']:.0f} "
            f"(CPU ratio {p['poll_cpu_ratio']:.2f}); per-round ratios {p['poll_ratio_per_round']}")
    return [verdict, sizes, poll]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s runs instead of 10 s")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--listings", type=int, default=10_000)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="an admin URL of the PostgreSQL server")
    parser.add_argument("--tool", choices=["wrk", "python"])
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = parser.parse_args()
    results = run(quick=args.quick, rounds=args.rounds, duration=args.duration, listings=args.listings,
                  pg_url=args.pg_url, tool=args.tool)
    for line in report_lines(results):
        print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
