"""PERF-3: listing search over 100k published listings, filters + facets, p95 < 30 ms at
concurrency 8, on SQLite and on PostgreSQL.

    python -m bench.search [--listings 100000] [--queries 2000] [--concurrency 8]
                           [--pg-url postgresql+asyncpg://postgres@127.0.0.1/postgres] [--skip-postgres]

For each database: a fresh store (migrations), 100k listings bulk-inserted (words drawn from a
topical vocabulary with a Zipf skew, 24 categories, 2,000 publishers, realistic kinds,
prices, deliveries and platform sets), the search index built with ``rebuild``, then a fixed
mix of queries run through ``listing_search_for(dialect).search`` on the store's own read
engine, each in its own read session (as an endpoint does), after a warm-up pass (CPU µs
per query: this process's CPU time, i.e. the search code and, on SQLite, the database):

    35 %  q + 1–2 filters, facets        20 %  q only, facets
    25 %  filters only (0–3), facets     20 %  sorts: popular/rating/newest/price, with or
                                                without q, half of them a second page (cursor)

Query words are drawn uniformly from the topical vocabulary (a third of the queries have two
words; a fifth end in a 3+ letter prefix). ``broad`` (not part of the PERF-3 figure, printed
beside it) runs the ten most frequent words alone: the worst case, a word in a third of
the catalogue.

Each database is measured twice: ``cold`` with the answer cache off, and ``warm`` with the
store's default cache (``SearchCache``: exact, invalidated by every index change) after a
warm-up with *other* queries (another seed), so its hits come only from queries repeating
within the measured mix. The PERF-3 figure is the warm one (how the store runs); the cold
one is printed beside it.

Prints ``PERF-3 sqlite p95=…ms bar=30ms PASS|FAIL`` and the same for postgresql (details on
stderr); ``run()`` returns the raw numbers for ``bench/run``.
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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from mercato.catalog.search.backend import listing_search_for
from mercato.catalog.search.query import ListingSearch, SearchQuery
from mercato.kit import migrate
from mercato.kit.db import Database
from mercato.models import Category, Listing, Publisher

BAR_MS = 30.0
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1/postgres"

TOPICS = """photo editor camera video music player audio recorder podcast radio notes notebook
journal diary todo tasks planner calendar reminder timer alarm clock stopwatch weather map
navigation travel fitness workout running yoga meditation sleep health diet recipe cooking
kitchen grocery budget finance expense invoice bank wallet crypto stock trading chess puzzle
sudoku crossword solitaire poker cards dice board strategy racing shooter platformer rpg
adventure arcade retro pixel simulator farming city builder tower defense survival horror
sandbox kart soccer football basketball tennis golf fishing hunting zombie space galaxy
pirate ninja dragon knight castle dungeon quest kingdom empire war tank plane train truck
browser email chat messenger social forum reader ebook comic manga news rss feed blog wiki
markdown editor code terminal git compiler debugger database backup sync cloud storage file
manager archive zip pdf scanner printer fax office spreadsheet presentation writer word
dictionary translator language flashcards quiz math calculator graph chemistry physics
astronomy star telescope anatomy piano guitar drum synth midi mixer dj karaoke lyrics
playlist streaming youtube twitch screen capture screenshot recorder clipboard launcher
widget theme icon wallpaper keyboard font emoji sticker gif meme drawing sketch paint canvas
vector design logo color palette 3d model render animation studio font typography layout
vpn firewall antivirus password vault security privacy tracker blocker ad cleaner booster
battery monitor network wifi bluetooth speed test benchmark system tools utility converter
unit currency barcode qr nfc remote control smart home light thermostat camera doorbell
baby kids family parenting school homework teacher classroom exam study course tutor
dating events tickets parking taxi ride delivery food restaurant coffee wine beer cocktail
garden plant bird dog cat pet vet horse aquarium weather surf ski bike hiking camping
""".split()

GENERAL = """the a and to of for with your in on is it you that this all app from be can by or
an as are at use more new easy simple fast free best one get every any without just make
have like it's help our will no not up only time way day see so into more other them need
keep find work each also where their best than most many share much data own what when
first want try start new take set let life better right look friends world full quick
powerful beautiful modern clean smart offline online support feature features design tools
custom private secure lightweight open source pro premium classic unlimited daily instant
automatic favorite personal professional built made high quality great love enjoy play
create edit organize manage track save export import download install update version
mode dark light support languages devices desktop mobile tablet hours levels players
""".split()

GENERAL = [word for word in dict.fromkeys(GENERAL) if word not in set(TOPICS)]
TOPICS = list(dict.fromkeys(TOPICS))
SYLLABLES = "ka zen tro vi lo mi ra pix nor del fy qua bel sto run lu mo tek dra gon sol vex ori an".split()
PLATFORM_SETS = [["windows"], ["macos"], ["linux"], ["android"], ["ios"], ["web"], ["windows", "macos"],
                 ["windows", "linux"], ["macos", "linux"], ["windows", "macos", "linux"], ["android", "ios"],
                 ["web", "android", "ios"], ["any"]]
PLATFORM_WEIGHTS = [12, 5, 4, 14, 10, 6, 8, 3, 2, 10, 12, 4, 10]


def _zipf(count: int, s: float) -> list[float]:
    return [1 / (rank + 1) ** s for rank in range(count)]


@dataclass
class Catalogue:
    publishers: list[dict[str, Any]]
    categories: list[dict[str, Any]]
    listings: list[dict[str, Any]]


def generate(count: int, seed: int = 3) -> Catalogue:
    rng = random.Random(seed)
    now = datetime(2026, 11, 1, tzinfo=UTC)
    topics = TOPICS[:]
    rng.shuffle(topics)
    topic_weights = _zipf(len(topics), 0.9)
    general_weights = _zipf(len(GENERAL), 1.0)

    def brand() -> str:
        return "".join(rng.choices(SYLLABLES, k=rng.randint(2, 3))).capitalize()

    suffixes = ["Labs", "Studio", "Games", "Software", "Apps", "Works"]
    publishers = [{"id": uuid.uuid4(), "slug": f"pub-{n}", "name": f"{brand()} {rng.choice(suffixes)}",
                   "description": "", "website": None, "verified": False, "created_at": now, "updated_at": now}
                  for n in range(2000)]
    categories = [{"id": uuid.uuid4(), "slug": f"bench-cat-{n}", "name": f"Category {n}", "description": "",
                   "position": n, "created_at": now, "updated_at": now} for n in range(24)]
    category_weights = _zipf(len(categories), 0.7)
    publisher_weights = _zipf(len(publishers), 0.8)
    listings = []
    for n in range(count):
        words = list(dict.fromkeys(rng.choices(topics, topic_weights, k=rng.randint(1, 3))))
        name = f"{brand()} {' '.join(w.capitalize() for w in words)}"[:100]
        tags = list(dict.fromkeys(words + rng.choices(topics, topic_weights, k=rng.randint(1, 3))))[:5]
        kind = rng.choices(["app", "plugin", "game"], [55, 25, 20])[0]
        delivery = rng.choices(["digital", "physical", "both"], [88, 3, 9])[0]
        price = 0 if rng.random() < 0.6 else rng.choice([99, 199, 299, 499, 999, 1999, 4999])

        def sentence(k: int, tags: list[str] = tags) -> str:  # the listing's own topics, now and then another
            return " ".join(rng.choice(tags) if roll < 0.12 else rng.choice(topics) if roll < 0.13 else
                            rng.choices(GENERAL, general_weights)[0] for roll in (rng.random() for _ in range(k)))

        downloads = int(rng.lognormvariate(5, 2))
        listings.append({
            "id": uuid.uuid4(), "slug": f"{'-'.join(words)}-{n}"[:64], "name": name, "kind": kind,
            "status": "published", "status_before_suspension": None, "suspension_reason": None,
            "publisher_id": rng.choices(publishers, publisher_weights)[0]["id"],
            "category_id": rng.choices(categories, category_weights)[0]["id"] if rng.random() > 0.05 else None,
            "tags": tags, "summary": sentence(rng.randint(6, 14))[:140],
            "description": ". ".join(sentence(rng.randint(8, 16)) for _ in range(rng.randint(3, 8))),
            "homepage": None, "license": None, "icon_url": None, "screenshots": [], "currency": "USD",
            "digital_price": price if delivery != "physical" else None,
            "physical_price": price + 1500 if delivery != "digital" else None,
            "stock": 100 if delivery != "digital" else None, "sort_price": price, "delivery": delivery,
            "platforms": rng.choices(PLATFORM_SETS, PLATFORM_WEIGHTS)[0], "latest_version_id": None,
            "latest_version": "1.0.0", "rating_count": (rc := rng.randint(0, 400)),
            "rating_sum": (rs := rng.randint(rc, 5 * rc)), "rating_average": round(rs / rc, 2) if rc else 0.0,
            "download_count": downloads, "install_count": downloads // rng.randint(2, 5), "sale_count": 0,
            "published_at": now - timedelta(minutes=rng.randint(0, 3 * 365 * 24 * 60)), "revision": 1,
            "created_at": now - timedelta(days=1200), "updated_at": now,
        })
    return Catalogue(publishers=publishers, categories=categories, listings=listings)


def query_mix(catalogue: Catalogue, count: int, seed: int = 5) -> list[tuple[str, SearchQuery]]:
    rng = random.Random(seed)
    topics = sorted(set(TOPICS))
    category_ids = [c["id"] for c in catalogue.categories]
    publisher_ids = [p["id"] for p in catalogue.publishers[:200]]

    def q() -> str:
        words = rng.sample(topics, 2 if rng.random() < 0.33 else 1)
        if rng.random() < 0.2 and len(words[-1]) > 4:
            words[-1] = words[-1][:rng.randint(3, len(words[-1]) - 1)]
        return " ".join(words)

    def filters(n: int) -> dict[str, Any]:
        options = {
            "kind": lambda: rng.choice(["app", "plugin", "game"]), "category_id": lambda: rng.choice(category_ids),
            "price": lambda: rng.choice(["free", "paid"]), "delivery": lambda: rng.choice(["digital", "physical"]),
            "platform": lambda: rng.choice(["windows", "macos", "linux", "android", "ios", "web"]),
            "publisher_id": lambda: rng.choice(publisher_ids),
        }
        names = rng.sample(list(options), n) if rng.random() < 0.9 else rng.sample(list(options)[:5], n)
        return {name: options[name]() for name in names}

    mix: list[tuple[str, SearchQuery]] = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.35:
            mix.append(("q+filters", SearchQuery(q=q(), **filters(rng.randint(1, 2)))))
        elif roll < 0.55:
            mix.append(("q", SearchQuery(q=q())))
        elif roll < 0.80:
            mix.append(("filters", SearchQuery(**filters(rng.randint(0, 3)),
                                               sort=rng.choice(["relevance", "popular", "newest"]))))
        else:
            sort = rng.choice(["popular", "rating", "newest", "price"])
            with_q = rng.random() < 0.5
            mix.append(("sorts", SearchQuery(q=q() if with_q else None, sort=sort,
                                             **filters(rng.randint(0, 1)), limit=20)))
    return mix


def broad_queries(catalogue: Catalogue) -> list[tuple[str, SearchQuery]]:
    counts: dict[str, int] = {}
    for listing in catalogue.listings:
        for word in set(listing["name"].lower().split()) | set(listing["tags"]):
            counts[word] = counts.get(word, 0) + 1
    top = sorted((w for w in counts if w in set(TOPICS)), key=counts.__getitem__, reverse=True)[:10]
    return [("broad", SearchQuery(q=word)) for word in top]


async def load(db: Database, catalogue: Catalogue) -> float:
    started = time.perf_counter()
    async with db.writer.begin() as connection:
        await connection.execute(insert(Publisher.__table__), catalogue.publishers)
        await connection.execute(insert(Category.__table__), catalogue.categories)
        for start in range(0, len(catalogue.listings), 5000):
            await connection.execute(insert(Listing.__table__), catalogue.listings[start:start + 5000])
    async with db.transaction() as session:
        await listing_search_for(db.writer.dialect.name).rebuild(session)
    if not db.is_sqlite:  # what autovacuum would have done by the time anyone searches
        async with db.writer.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("VACUUM ANALYZE"))
    return time.perf_counter() - started


async def measure(db: Database, search: ListingSearch, mix: list[tuple[str, SearchQuery]], *, concurrency: int,
                  follow_cursor: bool = True) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {}
    queue = list(enumerate(mix))
    follow = random.Random(11)

    async def worker() -> None:
        while queue:
            index, (label, query) = queue.pop()
            started = time.perf_counter()
            async with db.read_session() as session:
                result = await search.search(session, query)
            elapsed = (time.perf_counter() - started) * 1000
            timings.setdefault(label, []).append(elapsed)
            if follow_cursor and label == "sorts" and result.next_cursor and follow.random() < 0.5:
                started = time.perf_counter()
                async with db.read_session() as session:
                    await search.search(session, SearchQuery(**{**query.__dict__, "cursor": result.next_cursor}))
                timings.setdefault("sorts", []).append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return timings


def _p(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def summarise(timings: dict[str, list[float]], wall: float) -> dict[str, Any]:
    every = [t for label, values in timings.items() if label != "broad" for t in values]
    out: dict[str, Any] = {"count": len(every), "p50_ms": round(_p(every, 50), 2), "p95_ms": round(_p(every, 95), 2),
                           "p99_ms": round(_p(every, 99), 2), "mean_ms": round(statistics.fmean(every), 2),
                           "qps": round(len(every) / wall, 1), "classes": {}}
    for label, values in sorted(timings.items()):
        out["classes"][label] = {"count": len(values), "p50_ms": round(_p(values, 50), 2),
                                 "p95_ms": round(_p(values, 95), 2), "max_ms": round(max(values), 2)}
    return out


async def bench_database(url: str, catalogue: Catalogue, mix: list[tuple[str, SearchQuery]], *,
                         concurrency: int) -> dict[str, Any]:
    await asyncio.to_thread(migrate.upgrade, url)
    db = Database(url)
    search = listing_search_for(db.reader.dialect.name)
    try:
        load_seconds = await load(db, catalogue)
        out: dict[str, Any] = {}
        for mode, cache_size in (("cold", 0), ("warm", 4096)):
            # cold: no answer cache at all; warm: the store's default, warmed by *other* traffic
            # (another seed), so hits come only from queries repeating within the measured mix
            search.cache.size = cache_size  # type: ignore[attr-defined]
            search.cache.clear()  # type: ignore[attr-defined]
            await measure(db, search, query_mix(catalogue, len(mix), seed=99), concurrency=concurrency)  # warm-up
            search.cache.hits = search.cache.misses = 0  # type: ignore[attr-defined]
            started, cpu_started = time.perf_counter(), time.process_time()
            timings = await measure(db, search, mix, concurrency=concurrency)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            hits, misses = search.cache.hits, search.cache.misses  # type: ignore[attr-defined]
            broad = await measure(db, search, broad_queries(catalogue) * 4, concurrency=concurrency)
            out[mode] = summarise({**timings, **broad}, wall)
            out[mode]["cpu_us_per_query"] = round(cpu / max(1, out[mode]["count"]) * 1e6, 1)
            out[mode]["cache_hit_rate"] = round(hits / (hits + misses), 2) if hits + misses else 0.0
        search.cache.size = 4096  # type: ignore[attr-defined]
        out["load_s"] = round(load_seconds, 1)
        out["p95_ms"] = out["warm"]["p95_ms"]
        out["cpu_us_per_query"] = out["warm"]["cpu_us_per_query"]
        return out
    finally:
        await db.dispose()


async def _pg_admin(admin_url: str, sql: str) -> None:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(sql))
    finally:
        await engine.dispose()


async def _run(listings: int, queries: int, concurrency: int, pg_url: str | None) -> dict[str, Any]:
    catalogue = generate(listings)
    mix = query_mix(catalogue, queries)
    results: dict[str, Any] = {"listings": listings, "queries": queries, "concurrency": concurrency, "bar_ms": BAR_MS}
    with tempfile.TemporaryDirectory(prefix="mercato-bench-search-") as directory:
        results["sqlite"] = await bench_database(f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}", catalogue,
                                                 mix, concurrency=concurrency)
    _report("sqlite", results["sqlite"])
    if pg_url:
        name = f"mercato_bench_search_{uuid.uuid4().hex[:10]}"
        admin = make_url(pg_url)
        await _pg_admin(admin.render_as_string(hide_password=False), f'CREATE DATABASE "{name}"')
        try:
            url = admin.set(database=name).render_as_string(hide_password=False)
            results["postgresql"] = await bench_database(url, catalogue, mix, concurrency=concurrency)
        finally:
            await _pg_admin(admin.render_as_string(hide_password=False),
                            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _report("postgresql", results["postgresql"])
    return results


def _report(database: str, numbers: dict[str, Any]) -> None:
    verdict = "PASS" if numbers["p95_ms"] < BAR_MS else "FAIL"
    print(f"PERF-3 {database} p95={numbers['p95_ms']}ms bar={BAR_MS:g}ms {verdict}")
    for mode in ("warm", "cold"):
        run_numbers = numbers[mode]
        classes = ", ".join(f"{label} p95={c['p95_ms']}ms" for label, c in run_numbers["classes"].items())
        print(f"  {mode}: p50={run_numbers['p50_ms']}ms p95={run_numbers['p95_ms']}ms p99={run_numbers['p99_ms']}ms "
              f"{run_numbers['qps']} q/s, {run_numbers['cpu_us_per_query']:.0f} µs CPU/query, "
              f"cache hits {run_numbers['cache_hit_rate']:.0%}; {classes}", file=sys.stderr)
    print(f"  index built in {numbers['load_s']}s", file=sys.stderr)


def run(listings: int = 100_000, queries: int = 2000, concurrency: int = 8,
        pg_url: str | None = DEFAULT_PG_URL) -> dict[str, Any]:
    """Run PERF-3 on SQLite and (unless ``pg_url`` is None) PostgreSQL; the raw numbers."""
    return asyncio.run(_run(listings, queries, concurrency, pg_url))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="an admin URL of the PostgreSQL server")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = parser.parse_args()
    numbers = run(args.listings, args.queries, args.concurrency, None if args.skip_postgres else args.pg_url)
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2))


if __name__ == "__main__":
    main()
