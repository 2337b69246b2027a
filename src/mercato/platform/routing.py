"""Routes own their transaction.

Every API route uses :class:`TransactionalRoute`. A handler asks for a ``WriteSession``
(a session on the writer engine, its transaction begun lazily at first use) or a
``ReadSession``; the route commits the write session after the handler has produced
its response (storing the idempotent response in the same transaction), and rolls it
back when the handler raises. Services and repositories never commit.

Dependencies must not use the write session while they are being resolved: the
idempotency claim and audit rows for refused authorizations run in short transactions
of their own first, and on SQLite there is one writer connection.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response
from starlette.routing import BaseRoute

from mercato.kit.cache import EVICTIONS, apply_evictions
from mercato.kit.logging import log
from mercato.platform import idempotency
from mercato.platform.runtime import Runtime


def routes_with_paths(routes: Sequence[BaseRoute]) -> Iterator[tuple[str, BaseRoute]]:
    """Every route of an app with its full path, as declared: included routers are walked with
    their prefixes. FastAPI (0.165) builds a per-include copy of each included route (its
    dependencies and response models analysed again, ~3 ms a route) lazily, for the first
    request a router answers; listing routes through it built all ~330 at start (0.45 s of
    PERF-7's 2 s), which this walk does not."""
    yield from _walk(routes, None)


def _walk(routes: Sequence[BaseRoute], include: Any) -> Iterator[tuple[str, BaseRoute]]:
    for route in routes:
        router, context = getattr(route, "original_router", None), getattr(route, "include_context", None)
        if router is not None and context is not None:  # an included router
            yield from _walk(router.routes, context if include is None else include.combine(context))
            continue
        path = getattr(route, "path", None)
        if path is not None:
            yield (path if include is None else include.prefix + path), route


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def _write_session(request: Request) -> AsyncSession:
    session = getattr(request.state, "write_session", None)
    if session is None:
        session = get_runtime(request).db.write_session()
        request.state.write_session = session
    return session


def _read_session(request: Request) -> AsyncSession:
    session = getattr(request.state, "read_session", None)
    if session is None:
        session = get_runtime(request).db.read_session()
        request.state.read_session = session
    return session


# The dependencies are ``async def``: FastAPI runs a plain ``def`` dependency in the thread
# pool, a hop (and a wait for a free thread under load) for what is an attribute lookup.
async def _runtime_dependency(request: Request) -> Runtime:
    return get_runtime(request)


async def _write_session_dependency(request: Request) -> AsyncSession:
    return _write_session(request)


async def _read_session_dependency(request: Request) -> AsyncSession:
    return _read_session(request)


RuntimeDep = Annotated[Runtime, Depends(_runtime_dependency)]
WriteSession = Annotated[AsyncSession, Depends(_write_session_dependency)]
ReadSession = Annotated[AsyncSession, Depends(_read_session_dependency)]


class TransactionalRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                try:
                    response = await handler(request)
                except idempotency.Replay as replay:
                    return replay.response
                await _finish(request, response)
                return response
            except BaseException:
                await _abort(request)
                raise
            finally:
                await _close(request)

        return run


async def _finish(request: Request, response: Response) -> None:
    claim: idempotency.Claim | None = getattr(request.state, "idempotency_claim", None)
    session: AsyncSession | None = getattr(request.state, "write_session", None)
    if claim is not None and response.status_code >= 400:
        # An error answer (returned rather than raised) is not stored either: the key stays retryable.
        if session is not None and session.in_transaction():
            await session.commit()
        await idempotency.release(get_runtime(request).db, claim)
        return
    if claim is not None:
        if session is None:
            session = _write_session(request)
        await idempotency.complete(session, claim, response)
    if session is not None and session.in_transaction():
        await session.commit()
        await apply_evictions(session, get_runtime(request).cache)


async def _abort(request: Request) -> None:
    # Clean-up after a failure must not hide it: with the database gone the rollback and the
    # release fail too, and the client should get the first error (a 503), not these.
    session: AsyncSession | None = getattr(request.state, "write_session", None)
    if session is not None and session.in_transaction():
        session.info.pop(EVICTIONS, None)
        try:
            await session.rollback()
        except Exception as exc:
            log.warning("rollback after a failed request failed", error=str(exc))
    claim: idempotency.Claim | None = getattr(request.state, "idempotency_claim", None)
    if claim is not None:
        try:
            await idempotency.release(get_runtime(request).db, claim)
        except Exception as exc:  # the key frees itself when its lease ends
            log.warning("could not release an idempotency key", error=str(exc))


async def _close(request: Request) -> None:
    for name in ("write_session", "read_session"):
        session: AsyncSession | None = getattr(request.state, name, None)
        if session is not None:
            setattr(request.state, name, None)
            try:
                await session.close()
            except Exception as exc:
                log.warning("closing a session failed", error=str(exc))
