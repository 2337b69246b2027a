"""Runtime store policies (O4): what every other module reads, and how admins change them.

Other modules call :func:`current` whenever they apply a policy (never keep the result
beyond the operation at hand)::

    from mercato.policies import service as policies

    rules = await policies.current(session)
    if len(lines) > rules.max_order_lines: ...

Freshness. ``current`` answers from a small cache in each process, for at most
``CACHE_SECONDS``, so a busy checkout does not read the table on every request. A change
is seen:

- in the same transaction at once (``current`` reads the table in a transaction that
  changed the policies);
- in the process that made it right after its commit (the commit evicts the cache);
- in a process that runs the ``config.changed`` subscriber as soon as it is delivered;
- in every other process within ``CACHE_SECONDS`` (1 s), whatever the deployment: the
  entry expires. No shared cache is needed for this bound, so none is used.
"""

from __future__ import annotations

import time
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from mercato.access.principal import Principal
from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.kit.clock import utcnow
from mercato.kit.errors import ValidationFailed
from mercato.kit.logging import log
from mercato.kit.metrics import CACHE_REQUESTS
from mercato.policies import repository
from mercato.policies.schemas import POLICY_NAMES, Policies, PoliciesPatch

__all__ = ["CACHE_SECONDS", "Policies", "SettingsView", "current", "defaults", "evict_cache", "update", "view"]

CACHE_SECONDS = 1.0
EVENT_TYPE = "config.changed"
EVENT_SUBJECT = "policies"


# --- reading ------------------------------------------------------------------------------------

def defaults() -> Policies:
    return Policies()


async def current(session: AsyncSession) -> Policies:
    """The policies in force: the defaults, overlaid by what admins changed."""
    if session.info.get(_CHANGED_HERE):
        # This transaction changed them: read its own (uncommitted) rows, and cache nothing.
        return overlay(await repository.stored_values(session))
    engine = session.bind.sync_engine if session.bind is not None else None
    cached = _cache.get(engine)
    if cached is not None:
        return cached
    generation = _cache.generation
    policies = overlay(await repository.stored_values(session))
    _cache.put(engine, policies, generation=generation)
    return policies


@dataclass(frozen=True)
class SettingsView:
    policies: Policies
    updated_at: datetime | None
    updated_by: uuid.UUID | None


async def view(session: AsyncSession) -> SettingsView:
    """The policies with who changed them last, read from the table (never cached): for admins."""
    rows = await repository.stored(session)
    latest = max(rows, key=lambda row: row.updated_at, default=None)
    return SettingsView(policies=overlay({row.key: row.value for row in rows}),
                        updated_at=latest.updated_at if latest else None,
                        updated_by=latest.updated_by if latest else None)


def overlay(stored: Mapping[str, Any]) -> Policies:
    """The defaults with the stored values on top. A stored value the code no longer accepts
    (a policy removed, bounds narrowed by an upgrade) is ignored, with a warning, rather than
    failing every operation that reads the policies."""
    values = {key: value for key, value in stored.items() if key in POLICY_NAMES}
    try:
        return Policies.model_validate(values)
    except ValidationError as exc:
        bad = {str(error["loc"][0]) for error in exc.errors() if error["loc"]} or set(values)
        log.warning("stored policies ignored: their values are no longer valid", policies=sorted(bad),
                    errors=[error["msg"] for error in exc.errors()])
        try:
            return Policies.model_validate({key: value for key, value in values.items() if key not in bad})
        except ValidationError:
            return Policies()


# --- changing -------------------------------------------------------------------------------------

async def update(session: AsyncSession, *, actor: Principal, changes: Mapping[str, Any]) -> Policies:
    """Apply ``changes`` (policy name -> new value) and return the policies in force after.

    The whole result is validated (bounds, and rules across policies) before anything is
    written: invalid changes raise :class:`ValidationFailed` (422) and change nothing. Only
    the policies whose value changes are stored, audited (``settings:update``, before and
    after) and announced (``config.changed``), all in the caller's transaction; changes
    that change nothing write nothing.
    """
    requested = _validated(changes)
    await repository.lock_writers(session)
    before = overlay(await repository.stored_values(session))
    try:
        after = Policies.model_validate({**before.model_dump(), **requested})
    except ValidationError as exc:
        raise ValidationFailed("The policies would not be valid after this change; nothing was changed.",
                               errors=_problem_fields(exc)) from None
    changed = {key: {"before": getattr(before, key), "after": getattr(after, key)}
               for key in requested if getattr(before, key) != getattr(after, key)}
    if not changed:
        return after
    at = utcnow()
    for key in changed:
        await repository.put(session, key=key, value=getattr(after, key), at=at, by=actor.user_id)
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.settings_update,
                resource_type="settings", resource_id=EVENT_SUBJECT,
                before={key: change["before"] for key, change in changed.items()},
                after={key: change["after"] for key, change in changed.items()})
    await publish(session, CloudEvent(type=EVENT_TYPE, subject=EVENT_SUBJECT, data={"changed": changed}))
    _changed_in(session)
    return after


def _validated(changes: Mapping[str, Any]) -> dict[str, int]:
    if not isinstance(changes, Mapping):
        raise ValidationFailed("Send a JSON object of policy names and their new values.",
                               errors=[{"loc": ["body"], "msg": "Input should be an object", "type": "dict_type"}])
    try:
        patch = PoliciesPatch.model_validate(dict(changes))
    except ValidationError as exc:
        unknown = sorted(str(error["loc"][-1]) for error in exc.errors() if error["type"] == "extra_forbidden")
        detail = (f"Unknown policies: {', '.join(unknown)}. Known: {', '.join(POLICY_NAMES)}." if unknown
                  else "Some policy values are invalid; nothing was changed.")
        raise ValidationFailed(detail, errors=_problem_fields(exc)) from None
    return patch.model_dump(exclude_unset=True)


def _problem_fields(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors as the API reports request validation errors (located in the body)."""
    return [{"loc": ["body", *(part if isinstance(part, int) else str(part) for part in error["loc"])],
             "msg": str(error["msg"]), "type": str(error["type"])} for error in exc.errors()]


# --- the per-process cache ------------------------------------------------------------------------

_CHANGED_HERE = "mercato_policies_changed"


class _ProcessCache:
    """The policies per database engine of this process, each for ``CACHE_SECONDS``.

    Keyed by engine (weakly), so two stores in one process (tests) never share an entry. A
    ``generation`` bumped by every eviction keeps a read that started before an eviction
    from caching what it read."""

    def __init__(self) -> None:
        self._entries: weakref.WeakKeyDictionary[Engine, tuple[float, Policies]] = weakref.WeakKeyDictionary()
        self.generation = 0

    def get(self, engine: Engine | None) -> Policies | None:
        entry = self._entries.get(engine) if engine is not None else None
        if entry is None or entry[0] <= time.monotonic():
            CACHE_REQUESTS.labels("policies", "miss").inc()
            return None
        CACHE_REQUESTS.labels("policies", "hit").inc()
        return entry[1]

    def put(self, engine: Engine | None, policies: Policies, *, generation: int) -> None:
        if engine is not None and generation == self.generation and CACHE_SECONDS > 0:
            self._entries[engine] = (time.monotonic() + CACHE_SECONDS, policies)

    def evict(self) -> None:
        self.generation += 1
        self._entries.clear()


_cache = _ProcessCache()


def evict_cache() -> None:
    """Forget the cached policies of this process (every store in it): the next read goes to
    the database. Called after a change commits and on ``config.changed``."""
    _cache.evict()


def _changed_in(session: AsyncSession) -> None:
    """Until its transaction ends, ``session`` reads the policies from the table; its commit
    evicts this process's cache."""
    session.info[_CHANGED_HERE] = True
    sync_session = session.sync_session
    if not sa_event.contains(sync_session, "after_commit", _evict_after_commit):
        sa_event.listen(sync_session, "after_commit", _evict_after_commit)
        sa_event.listen(sync_session, "after_transaction_end", _forget_change)


def _evict_after_commit(_session: Session) -> None:
    evict_cache()


def _forget_change(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_CHANGED_HERE, None)
