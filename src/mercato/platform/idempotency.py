"""Idempotency keys (API.md conventions; QUALITY M2–M5).

A request with an ``Idempotency-Key`` first *claims* the key in a short transaction of its
own, then runs; the route stores the response in the same transaction as the request's
effects (see ``platform/routing.py``), guarded by the claim's lease. So:

- same key, same body, finished  -> the stored status and body again (``Idempotent-Replayed: true``);
- same key, other body           -> 422 ``idempotency_key_reused``;
- same key while the first runs  -> 409 ``idempotency_key_in_flight`` (retryable);
- a crash before commit leaves only the claim, whose lease runs out: the retry runs anew,
  and a late finisher whose lease was taken over cannot commit its effects.

Errors are not stored: a request that failed with a 4xx may be retried with the same key.
Keys are scoped to the caller and kept 24 h (setting ``idempotency_retention_hours``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import JSONResponse, Response

from mercato.kit.clock import utcnow
from mercato.kit.db import Database
from mercato.kit.errors import BadRequest, Conflict, ValidationFailed
from mercato.models import IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
KEPT_HEADERS = ("content-type", "location", "etag")


class IdempotencyKeyMissing(BadRequest):
    code, title = "idempotency_key_missing", "This request needs an Idempotency-Key header"


class IdempotencyKeyInvalid(BadRequest):
    code, title = "idempotency_key_invalid", "The Idempotency-Key header is not valid"


class IdempotencyKeyReused(ValidationFailed):
    code, title = "idempotency_key_reused", "This Idempotency-Key was used for a different request"


class IdempotencyKeyInFlight(Conflict):
    code, title = "idempotency_key_in_flight", "A request with this Idempotency-Key is still running"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or "Retry in a moment to get its result.", headers={"Retry-After": "1"})


class Replay(Exception):
    """Raised by the dependency to answer with the stored response."""

    def __init__(self, response: Response) -> None:
        self.response = response


@dataclass(frozen=True)
class Claim:
    owner: str
    key: str
    lease_id: str


def validate_key(raw: str | None, *, required: bool) -> str | None:
    if raw is None:
        if required:
            raise IdempotencyKeyMissing("Send an Idempotency-Key header (1–255 characters) so a retry is safe.")
        return None
    if not 1 <= len(raw) <= MAX_KEY_LENGTH or not raw.isprintable():
        raise IdempotencyKeyInvalid("Idempotency-Key must be 1–255 printable characters.")
    return raw


def fingerprint(method: str, path: str, body: bytes) -> str:
    """The request's identity: method, path and body (JSON compared by value, not by spacing)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode() if body else b""
    except (ValueError, RecursionError):  # not JSON, or nested deeper than we re-encode: compare the bytes
        canonical = body
    digest = hashlib.sha256()
    for part in (method.encode(), b" ", path.encode(), b"\n", canonical):
        digest.update(part)
    return digest.hexdigest()


async def claim(db: Database, *, owner: str, key: str, request_hash: str, retention: timedelta,
                lease: timedelta) -> Claim:
    """Claim ``key`` for this request, or raise Replay / 409 / 422."""
    now = utcnow()
    lease_id = str(uuid.uuid4())
    try:
        async with db.transaction() as session:
            record = await session.get(IdempotencyRecord, (owner, key))
            if record is None or record.expires_at <= now:
                if record is not None:
                    await session.delete(record)
                    await session.flush()
                session.add(IdempotencyRecord(
                    owner=owner, key=key, request_hash=request_hash, state="in_flight", lease_id=lease_id,
                    locked_until=now + lease, created_at=now, expires_at=now + retention,
                ))
                await session.flush()
                return Claim(owner, key, lease_id)
            if record.request_hash != request_hash:
                raise IdempotencyKeyReused("Use a new Idempotency-Key for a different request.")
            if record.state == "done":
                raise Replay(_stored_response(record))
            if record.locked_until > now:
                raise IdempotencyKeyInFlight()
            # The holder's lease ran out (it crashed): take the claim over, guarded.
            taken = await session.execute(
                update(IdempotencyRecord)
                .where(IdempotencyRecord.owner == owner, IdempotencyRecord.key == key,
                       IdempotencyRecord.lease_id == record.lease_id, IdempotencyRecord.state == "in_flight")
                .values(lease_id=lease_id, locked_until=now + lease)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                raise IdempotencyKeyInFlight()
            return Claim(owner, key, lease_id)
    except IntegrityError as exc:  # a concurrent first request inserted the same key
        raise IdempotencyKeyInFlight() from exc


async def complete(session: AsyncSession, claim: Claim, response: Response) -> None:
    """Store the response in the request's own transaction, only while the lease is ours."""
    body = bytes(response.body) if hasattr(response, "body") else b""
    # The exact bytes, so a replay is byte-identical (PostgreSQL's JSONB would reorder keys).
    try:
        stored_body: dict[str, str] = {"_text": body.decode("utf-8")}
    except UnicodeDecodeError:
        stored_body = {"_base64": base64.b64encode(body).decode("ascii")}
    headers = {name: value for name, value in response.headers.items() if name in KEPT_HEADERS}
    done = await session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.owner == claim.owner, IdempotencyRecord.key == claim.key,
               IdempotencyRecord.lease_id == claim.lease_id, IdempotencyRecord.state == "in_flight")
        .values(state="done", response_status=response.status_code, response_body=stored_body,
                response_headers=headers)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise IdempotencyKeyInFlight("This request took too long and was taken over by a retry.")


async def release(db: Database, claim: Claim) -> None:
    """Forget an unfinished claim after the request failed, so the key can be retried."""
    async with db.transaction() as session:
        await session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.owner == claim.owner, IdempotencyRecord.key == claim.key,
                IdempotencyRecord.lease_id == claim.lease_id, IdempotencyRecord.state == "in_flight")
        )


async def purge_expired(session: AsyncSession) -> int:
    result = await session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= utcnow()))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _stored_response(record: IdempotencyRecord) -> Response:
    headers = dict(record.response_headers or {})
    headers["idempotent-replayed"] = "true"
    media_type = headers.pop("content-type", "application/json")
    stored = record.response_body
    if isinstance(stored, dict) and set(stored) == {"_text"}:
        return Response(stored["_text"], status_code=record.response_status or 200,
                        headers=headers, media_type=media_type)
    if isinstance(stored, dict) and set(stored) == {"_base64"}:
        return Response(base64.b64decode(stored["_base64"]), status_code=record.response_status or 200,
                        headers=headers, media_type=media_type)
    # Records stored as parsed JSON (before bodies were kept verbatim).
    return JSONResponse(record.response_body, status_code=record.response_status or 200, headers=headers,
                        media_type=media_type)
