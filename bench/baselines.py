"""Baseline applications, served by the same ``uvicorn`` settings as Mercato (bench/servers.py).

- ``hello``: FastAPI, one JSON endpoint (``GET /hello``) — PERF-1's yardstick.
- ``pk_read``: FastAPI, ``GET /items/{id}``: a bare asyncpg primary-key read of one row of a
  small table, answered as JSON — PERF-2's yardstick. ``BENCH_PG_DSN`` names the database,
  ``BENCH_PK_TABLE`` the table (made by :func:`create_pk_table`).
- ``static_file``: Starlette ``FileResponse`` of ``BENCH_STATIC_FILE`` at ``GET /file`` —
  PERF-8's yardstick.
- ``checkout``: FastAPI, ``POST /checkout``: a whole digital purchase in one asyncpg
  transaction (guarded wallet debit, order row, entitlement) — PERF-4's yardstick, the
  "one-transaction checkout" the saga is compared with. Tables from :func:`create_checkout_tables`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse
from starlette.routing import Route

PK_TABLE = "bench_pk_items"

# --- hello -----------------------------------------------------------------------------------------

hello = FastAPI()


@hello.get("/hello")
async def say_hello() -> dict[str, str]:
    return {"hello": "world"}


# --- asyncpg primary-key read ---------------------------------------------------------------------------


@asynccontextmanager
async def _pool(app: FastAPI) -> AsyncIterator[None]:
    import asyncpg

    app.state.pool = await asyncpg.create_pool(os.environ["BENCH_PG_DSN"], min_size=1, max_size=10)
    table = os.environ.get("BENCH_PK_TABLE", PK_TABLE)
    app.state.query = f"SELECT id, slug, name, summary, price, created_at FROM {table} WHERE id = $1"
    try:
        yield
    finally:
        await app.state.pool.close()


pk_read = FastAPI(lifespan=_pool)


@pk_read.get("/items/{item_id}")
async def read_item(item_id: int, request: Request) -> dict[str, Any]:
    row = await request.app.state.pool.fetchrow(request.app.state.query, item_id)
    return dict(row)


async def create_pk_table(dsn: str, rows: int = 100) -> None:
    """The small table the baseline reads (in Mercato's benchmark database)."""
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f"CREATE TABLE IF NOT EXISTS {PK_TABLE} (id integer PRIMARY KEY, slug text NOT NULL, "
                                 "name text NOT NULL, summary text NOT NULL, price integer NOT NULL, "
                                 "created_at timestamptz NOT NULL DEFAULT now())")
        await connection.executemany(
            f"INSERT INTO {PK_TABLE} (id, slug, name, summary, price) VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT DO NOTHING",
            [(n, f"item-{n}", f"Item {n}", f"Summary of item {n}, a short line of text.", n * 100)
             for n in range(1, rows + 1)])
        await connection.execute(f"ANALYZE {PK_TABLE}")
    finally:
        await connection.close()


# --- static file -------------------------------------------------------------------------------------


async def _serve_file(request: Request) -> FileResponse | PlainTextResponse:
    path = os.environ.get("BENCH_STATIC_FILE")
    if not path:
        return PlainTextResponse("BENCH_STATIC_FILE is not set", status_code=500)
    return FileResponse(path, media_type="application/gzip")


async def _ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


static_file = Starlette(routes=[Route("/file", _serve_file), Route("/", _ok)])


# --- one-transaction checkout ---------------------------------------------------------------------

CHECKOUT_TABLES = ("bench_wallets", "bench_orders", "bench_entitlements")


@asynccontextmanager
async def _checkout_pool(app: FastAPI) -> AsyncIterator[None]:
    import asyncpg

    app.state.pool = await asyncpg.create_pool(os.environ["BENCH_PG_DSN"], min_size=1, max_size=10)
    try:
        yield
    finally:
        await app.state.pool.close()


checkout = FastAPI(lifespan=_checkout_pool)


@checkout.post("/checkout")
async def check_out(body: dict[str, Any], request: Request) -> dict[str, Any]:
    """Debit the wallet (never below zero), record the order and the entitlement: one transaction."""
    async with request.app.state.pool.acquire() as connection, connection.transaction():
        balance = await connection.fetchval(
            "UPDATE bench_wallets SET balance = balance - $2 WHERE user_id = $1 AND balance >= $2 RETURNING balance",
            body["user"], body["amount"])
        if balance is None:
            return {"status": "refused"}
        order_id = await connection.fetchval(
            "INSERT INTO bench_orders (user_id, listing_id, amount, status) VALUES ($1, $2, $3, 'completed') "
            "RETURNING id", body["user"], body["listing"], body["amount"])
        await connection.execute("INSERT INTO bench_entitlements (user_id, listing_id, order_id) VALUES ($1, $2, $3) "
                                 "ON CONFLICT DO NOTHING", body["user"], body["listing"], order_id)
    return {"id": order_id, "status": "completed", "balance": balance}


async def create_checkout_tables(dsn: str, users: list[str], balance: int) -> None:
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS bench_wallets (user_id text PRIMARY KEY, balance bigint NOT NULL "
            "CHECK (balance >= 0));"
            "CREATE TABLE IF NOT EXISTS bench_orders (id bigserial PRIMARY KEY, user_id text NOT NULL, "
            "listing_id text NOT NULL, amount bigint NOT NULL, status text NOT NULL, "
            "created_at timestamptz NOT NULL DEFAULT now());"
            "CREATE TABLE IF NOT EXISTS bench_entitlements (user_id text NOT NULL, listing_id text NOT NULL, "
            "order_id bigint NOT NULL, PRIMARY KEY (user_id, listing_id))")
        await connection.executemany("INSERT INTO bench_wallets (user_id, balance) VALUES ($1, $2) "
                                     "ON CONFLICT (user_id) DO UPDATE SET balance = EXCLUDED.balance",
                                     [(user, balance) for user in users])
    finally:
        await connection.close()

