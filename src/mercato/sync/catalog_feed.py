"""The catalog change feed (S1): recording changes, reading deltas and snapshots, diffs.

One row per listing (``catalog_changes``): a change to the listing's public view gives
the row a new sequence number, the content hash and the public JSON as served; a listing
leaving the public catalog (delisted, suspended) becomes a tombstone. Compaction is built
in (only the latest change of a listing is kept); tombstones are purged after
``sync_tombstone_retention_days`` and the purge raises the *horizon*: a client whose
cursor is below it may have missed a removal and is sent a full snapshot (``reset``).

A cursor is ``(seq, floor)``: the client has applied every change up to ``seq``, and its
state was built from a snapshot taken when the feed was at ``floor`` (removals before
that never concerned it). It needs a reset when the horizon passed ``max(seq, floor)``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.catalog import presenter
from mercato.catalog import service as catalog
from mercato.catalog.schemas import ListingRead
from mercato.kit.clock import utcnow
from mercato.sync import cursor as opaque
from mercato.sync import repository
from mercato.sync.repository import FeedRow

# Counters that move with every download or install: not part of the content hash, so they
# do not make every client re-fetch a listing; the body carries their value when it was recorded.
VOLATILE = frozenset({"download_count", "install_count"})
HASH_LENGTH = 32  # hex characters of SHA-256: ample to tell versions of a listing apart
HEAD_CACHE_KEY = "sync:catalog:head"


def content_hash(view: ListingRead) -> str:
    canonical = json.dumps(view.model_dump(mode="json", exclude=set(VOLATILE)), sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:HASH_LENGTH]


# --- recording ----------------------------------------------------------------------------------

async def record_listing(session: AsyncSession, listing_id: uuid.UUID) -> bool:
    """Bring the listing's feed row up to its current public view; True when it changed.
    The sequence number is taken first (locking the counter), so the view read after it is
    at least as new as that of any change numbered before it."""
    seq = await repository.next_seq(session)
    current = await repository.change(session, listing_id)
    found = await catalog.visible_batch_by_ids(session, [listing_id])  # published ones only
    now = utcnow()
    if not found:
        if current is None or current.deleted:
            return False
        await repository.put(session, listing_id=listing_id, seq=seq, hash_=None, deleted=True, body=None, at=now,
                             exists=True)
        return True
    (view,) = await presenter.present(session, found)
    hash_ = content_hash(view)
    if current is not None and not current.deleted and current.hash == hash_:
        return False
    await repository.put(session, listing_id=listing_id, seq=seq, hash_=hash_, deleted=False,
                         body=view.model_dump_json(), at=now, exists=current is not None)
    return True


async def record_publisher(session: AsyncSession, publisher_id: uuid.UUID) -> int:
    """A publisher's name or verification shows in each of its listings."""
    changed = 0
    for listing_id, _slug in await catalog.listings_of_publisher(session, publisher_id):
        changed += await record_listing(session, listing_id)
    return changed


async def reconcile_batch(session: AsyncSession, *, after: uuid.UUID | None, limit: int,
                          feed: bool) -> tuple[int, uuid.UUID | None]:
    """Re-record a batch of listings (``feed=False``: published listings, which fills the feed
    for listings published before it existed and catches changes no event announced, such as
    stock; ``feed=True``: listings live in the feed, which tombstones those no longer public).
    Returns (changes, the position to continue after, or None at the end)."""
    ids = await (repository.live_ids if feed else repository.published_listing_ids)(session, after=after, limit=limit)
    changed = 0
    for listing_id in ids:
        changed += await record_listing(session, listing_id)
    return changed, ids[-1] if len(ids) == limit else None


async def purge(session: AsyncSession, *, retention_days: int, now: datetime | None = None) -> int:
    """Purge old tombstones and raise the horizon past them; the new horizon (0: nothing purged)."""
    highest = await repository.purge_tombstones(session, before=(now or utcnow()) - timedelta(days=retention_days))
    if highest:
        await repository.raise_horizon(session, highest)
    return highest


# --- reading ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cursor:
    seq: int
    floor: int

    def encode(self) -> str:
        return opaque.encode([self.seq, self.floor])

    @classmethod
    def decode(cls, text: str) -> Cursor:
        document = opaque.decode(text)
        if (not isinstance(document, list) or len(document) != 2
                or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**62 for n in document)
                or document[1] < document[0]):
            raise opaque.invalid()
        return cls(document[0], document[1])


@dataclass(frozen=True)
class FeedPage:
    rows: list[FeedRow]
    cursor: Cursor
    reset: bool
    more: bool


def needs_reset(cursor: Cursor | None, *, horizon: int, issued: int) -> bool:
    """No cursor, one below the horizon, or one from the future (a restored database)."""
    return cursor is None or horizon > max(cursor.seq, cursor.floor) or cursor.seq > issued


async def page(session: AsyncSession, cursor: Cursor | None, *, limit: int) -> FeedPage:
    counters = await repository.counters(session)
    if needs_reset(cursor, horizon=counters[repository.HORIZON], issued=counters[repository.SEQUENCE]):
        # A snapshot: every live listing; the client drops what it held before applying it.
        head = await repository.head(session)
        rows = await repository.since(session, 0, limit=limit + 1, live_only=True)
        if len(rows) > limit:
            last = rows[limit - 1][1]
            return FeedPage(rows[:limit], Cursor(last, max(last, head)), reset=True, more=True)
        # The rest up to the head are tombstones of listings this snapshot does not hold.
        position = max([head, *(row[1] for row in rows)])
        return FeedPage(rows, Cursor(position, position), reset=True, more=False)
    assert cursor is not None
    rows = await repository.since(session, cursor.seq, limit=limit + 1)
    if not rows:
        return FeedPage([], cursor, reset=False, more=False)
    last = rows[:limit][-1][1]
    return FeedPage(rows[:limit], Cursor(last, max(last, cursor.floor)), reset=False, more=len(rows) > limit)


def _change(row: FeedRow) -> bytes:
    listing_id, _seq, hash_, deleted, body = row
    if deleted or body is None:
        return b'{"id":"%s","hash":null,"deleted":true,"listing":null}' % str(listing_id).encode()
    return b'{"id":"%s","hash":"%s","deleted":false,"listing":%s}' % (
        str(listing_id).encode(), (hash_ or "").encode(), body.encode())


def render(page_: FeedPage) -> bytes:
    """The answer's JSON, built from the stored listing JSON without parsing it again."""
    return b'{"changes":[%s],"cursor":"%s","reset":%s,"more":%s}' % (
        b",".join(_change(row) for row in page_.rows), page_.cursor.encode().encode(),
        b"true" if page_.reset else b"false", b"true" if page_.more else b"false")


def etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def unchanged_body(cursor: Cursor) -> bytes:
    """The answer to a cursor at the head: nothing changed."""
    return render(FeedPage([], cursor, reset=False, more=False))


# --- diff ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Diff:
    changed: list[FeedRow]
    new: list[FeedRow]
    deleted: list[uuid.UUID]
    cursor: Cursor
    complete: bool


async def diff(session: AsyncSession, held: dict[uuid.UUID, str], *, limit: int) -> Diff:
    """What differs between the hashes a client holds and the feed: listings changed, new to
    it (up to ``limit`` of both, with their JSON) and removed; and a cursor to go on from.
    The cursor is the head before the comparison, so nothing after it can be missed."""
    head = await repository.head(session)
    live = await repository.live_hashes(session)
    changed_ids = [i for i, h in held.items() if i in live and live[i] != h]
    new_ids = [i for i in live if i not in held]
    deleted = sorted((i for i in held if i not in live), key=str)
    wanted = (changed_ids + new_ids)[:limit]
    rows = {row[0]: row for row in await repository.by_ids(session, wanted)} if wanted else {}
    changed_set = set(changed_ids)
    return Diff(changed=[rows[i] for i in wanted if i in changed_set and i in rows],
                new=[rows[i] for i in wanted if i not in changed_set and i in rows], deleted=deleted,
                cursor=Cursor(head, head), complete=len(changed_ids) + len(new_ids) <= limit)


def render_diff(result: Diff) -> bytes:
    return b'{"changed":[%s],"new":[%s],"deleted":%s,"cursor":"%s","complete":%s}' % (
        b",".join(_change(row) for row in result.changed), b",".join(_change(row) for row in result.new),
        json.dumps([str(i) for i in result.deleted]).encode(), result.cursor.encode().encode(),
        b"true" if result.complete else b"false")


def head_entry(head: int, horizon: int) -> bytes:
    return b"%d %d" % (head, horizon)


def parse_head_entry(value: bytes) -> tuple[int, int]:
    head, horizon = value.split()
    return int(head), int(horizon)


async def horizon(session: AsyncSession) -> int:
    return (await repository.counters(session))[repository.HORIZON]


def decode_cursor(text: str | None) -> Cursor | None:
    return Cursor.decode(text) if text else None
