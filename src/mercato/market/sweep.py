"""Following market sources' sync feeds: the ``market.sync`` sweep and "sync now".

One sync of a source (:func:`sync_source`):

1. reads the source (its cursor and the ETag of the last answer) in a short transaction;
2. outside any transaction, asks the source for ``GET {url}/api/v1/sync/catalog?cursor=``
   with ``If-None-Match``: 304 means nothing changed. The URL passes the SSRF guard again and
   the request goes to the checked address (no redirects, no proxy from the environment),
   within ``market_timeout_seconds``, reading at most ``market_max_response_bytes``;
3. validates the body (:class:`~mercato.market.schemas.RemotePage`) and applies it with the
   new cursor in one transaction (a crash never skips or half-applies a page); while the
   feed says ``more``, the next page follows (at most ``market_max_pages`` per sync);
4. records the outcome: success resets ``failure_count`` (health ``ok``); a failure
   (connection, timeout, non-2xx, bad JSON, a body that is not a feed page, a refused URL)
   counts one, keeps the error and sets health ``failing``. Mirrored listings stay as they
   were: a source that is down keeps its last known catalog.

The sweep ticks every few seconds and syncs each enabled source that is due: never synced,
or ``market_sync_interval_seconds`` after its last attempt; a failing source waits
min(2^failures × interval, 1 h).
"""

from __future__ import annotations

import asyncio
import json
import uuid
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from mercato import __version__
from mercato.bus.context import HandlerContext
from mercato.bus.scheduler import sweep
from mercato.config import Settings
from mercato.kit import ssrf
from mercato.kit.clock import utcnow
from mercato.kit.db import Database
from mercato.kit.errors import found_or_raise
from mercato.kit.logging import log
from mercato.market import repository, service
from mercato.market.errors import MarketSourceNotFound
from mercato.market.schemas import RemotePage

TICK_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 3600.0
USER_AGENT = f"Mercato-Market/{__version__}"


class FeedError(Exception):
    """The source answered something other than a feed page (or nothing)."""


@dataclass
class SyncResult:
    source_id: uuid.UUID
    ok: bool
    pages: int = 0
    upserted: int = 0
    removed: int = 0
    error: str | None = None


@dataclass(frozen=True)
class _Answer:
    not_modified: bool
    etag: str | None
    page: RemotePage | None


def next_due(last_synced_at: datetime | None, failure_count: int, interval: float) -> datetime | None:
    """When a source should be synced next; None: at once (never synced)."""
    if last_synced_at is None:
        return None
    wait = interval if failure_count == 0 else min(2 ** failure_count * interval, MAX_BACKOFF_SECONDS)
    return last_synced_at + timedelta(seconds=wait)


async def fetch(settings: Settings, source_url: str, cursor: str | None, etag: str | None) -> _Answer:
    """One feed request. Raises :class:`FeedError`, :class:`ssrf.UrlNotAllowed`, ``httpx.HTTPError``,
    ``OSError`` or ``TimeoutError`` on failure."""
    target = await service.check_url(settings, service.feed_url(source_url, None))
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
    if etag:
        headers["If-None-Match"] = etag
    params = {"cursor": cursor} if cursor else {}
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False,
                                 timeout=httpx.Timeout(settings.market_timeout_seconds)) as client:
        response = await target.send(client, "GET", headers=headers, params=params)
        try:
            if response.status_code == 304:
                return _Answer(True, etag, None)
            if not 200 <= response.status_code < 300:
                raise FeedError(f"HTTP {response.status_code} from the sync feed")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > settings.market_max_response_bytes:
                    raise FeedError(f"the feed answer is larger than {settings.market_max_response_bytes} bytes")
        finally:
            await response.aclose()
        return _Answer(False, response.headers.get("etag"), _page(bytes(body)))


def _page(body: bytes) -> RemotePage:
    try:
        data: Any = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FeedError(f"the feed answer is not JSON: {exc}") from exc
    try:
        return RemotePage.model_validate(data)
    except ValidationError as exc:
        raise FeedError(f"the feed answer is not a sync page: {exc.error_count()} errors, first: "
                        f"{exc.errors()[0]['msg']} at {'.'.join(map(str, exc.errors()[0]['loc']))}") from exc


# One sync of a source at a time in this process (the sweep and "sync now" share the lock).
_LOCKS: weakref.WeakValueDictionary[uuid.UUID, asyncio.Lock] = weakref.WeakValueDictionary()


async def sync_source(db: Database, settings: Settings, source_id: uuid.UUID) -> SyncResult:
    """Sync one source now (see the module docstring). Never raises for the source's failures."""
    lock = _LOCKS.get(source_id)
    if lock is None:
        lock = _LOCKS[source_id] = asyncio.Lock()
    async with lock:
        return await _sync_source(db, settings, source_id)


async def _sync_source(db: Database, settings: Settings, source_id: uuid.UUID) -> SyncResult:
    async with db.read_session() as session:
        source = found_or_raise(await repository.get(session, source_id),
                                MarketSourceNotFound, f"No market source {source_id}.")
        url, cursor, etag = source.url, source.cursor, source.etag
    result = SyncResult(source_id=source_id, ok=True)
    try:
        for _ in range(settings.market_max_pages):
            async with asyncio.timeout(settings.market_timeout_seconds * 2):
                answer = await fetch(settings, url, cursor, etag)
            if answer.not_modified or answer.page is None:
                break
            page = answer.page
            result.pages += 1
            # The ETag is only worth sending again for the same cursor: an answer at the head of the feed.
            etag = answer.etag if page.cursor == cursor and not page.changes else None
            async with db.transaction() as session:
                if await repository.get(session, source_id) is None:
                    return result  # deleted meanwhile: nothing to apply to
                upserted, removed = await service.apply(session, source_id, page.changes, reset=page.reset,
                                                        now=utcnow())
                await repository.record_outcome(session, source_id, cursor=page.cursor, etag=etag)
            result.upserted += upserted
            result.removed += removed
            cursor = page.cursor
            if not page.more:
                break
    except ssrf.UrlNotAllowed as exc:
        result.ok, result.error = False, f"refused: {exc.detail}"
    except TimeoutError:
        result.ok, result.error = False, f"timed out after {settings.market_timeout_seconds:g} s"
    except (FeedError, httpx.HTTPError, OSError) as exc:
        result.ok, result.error = False, f"{type(exc).__name__}: {exc}".rstrip(": ")
    except IntegrityError:  # another process applied the same page at the same moment: the next sync catches up
        result.ok, result.error = False, "a concurrent sync of this source applied the same changes"
    await _record(db, result)
    return result


async def _record(db: Database, result: SyncResult) -> None:
    now = utcnow()
    async with db.transaction() as session:
        if result.ok:
            await repository.record_outcome(session, result.source_id, failure_count=0, last_error=None,
                                            health="ok", last_synced_at=now, last_success_at=now, updated_at=now)
        else:
            await repository.count_failure(session, result.source_id, at=now, error=(result.error or "")[:2000])
    if result.ok:
        if result.upserted or result.removed:
            log.info("market: source synced", source_id=str(result.source_id), pages=result.pages,
                     upserted=result.upserted, removed=result.removed)
    else:
        log.warning("market: source sync failed", source_id=str(result.source_id), error=result.error)


async def sync_due(db: Database, settings: Settings, *, now: datetime | None = None) -> list[SyncResult]:
    """Sync every enabled source that is due (one after another); returns what was done."""
    now = now or utcnow()
    async with db.read_session() as session:
        due = [source.id for source in await repository.enabled_sources(session)
               if (at := next_due(source.last_synced_at, source.failure_count,
                                  settings.market_sync_interval_seconds)) is None or at <= now]
    results = []
    for source_id in due:
        try:
            results.append(await sync_source(db, settings, source_id))
        except MarketSourceNotFound:
            continue  # deleted meanwhile
    return results


@sweep("market.sync", every=TICK_SECONDS)
async def sync_sweep(bus: HandlerContext) -> None:
    """Runs in the process holding the sweep's lease (the bus's scheduler)."""
    await sync_due(bus.db, bus.settings)
