"""Route-level access: every route declares its permission with one of these.

- ``requires(Permission.x)`` — authenticated, and the caller holds ``x`` (any condition;
  the route or its repository narrows ``own``/``public``). 401 without valid
  credentials, 403 (audited) without the permission.
- ``authenticated()`` — any signed-in caller (used for the caller's own session).
- ``public()`` — no credentials needed.

The declaration is attached to the dependency, so ``route_policies(app)`` can list the
policy of every route (the A1 test fails for a route without one) and the OpenAPI
document shows it as ``x-permission``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access import service as access
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.kit.errors import Forbidden, Unauthenticated
from mercato.platform import idempotency
from mercato.platform.routing import get_runtime, routes_with_paths
from mercato.platform.runtime import Runtime

POLICY_ATTRIBUTE = "__mercato_policy__"
PUBLIC = "public"
AUTHENTICATED = "authenticated"

# How a bearer credential becomes a caller: ``accounts`` (access and API tokens) and ``installs``
# (instance tokens) hand their checks in at wiring time (``mercato.app``); the guard imports neither.
BearerIdentifier = Callable[[AsyncSession, Runtime, str], Awaitable[Any]]  # accounts' BearerIdentity or None
TokenToucher = Callable[[Runtime, Any], Awaitable[None]]
InstanceIdentifier = Callable[[AsyncSession, str], Awaitable[Principal | None]]


class _Identities:
    bearer: BearerIdentifier | None = None
    touch_api_token: TokenToucher | None = None
    instance_prefix: str | None = None
    instance: InstanceIdentifier | None = None


def register_bearer_tokens(identify: BearerIdentifier, touch_api_token: TokenToucher) -> None:
    """``identify`` resolves an access or API token to its user (None: not valid now);
    ``touch_api_token`` records that an API token was used."""
    _Identities.bearer = identify
    _Identities.touch_api_token = touch_api_token


def register_instance_tokens(prefix: str, identify: InstanceIdentifier) -> None:
    """Tokens starting with ``prefix`` are instance tokens, resolved by ``identify`` (None: unknown or revoked)."""
    _Identities.instance_prefix = prefix
    _Identities.instance = identify


def _is_instance_token(credential: str) -> bool:
    return _Identities.instance_prefix is not None and credential.startswith(_Identities.instance_prefix)


def _unwired(what: str) -> RuntimeError:
    return RuntimeError(f"No {what} check registered: the composition root (mercato.app) wires it in.")


async def _identify_instance(request: Request, credential: str) -> Principal | None:
    if _Identities.instance is None:
        raise _unwired("instance-token")
    async with get_runtime(request).db.read_session() as session:
        return await _Identities.instance(session, credential)


async def still_identifies(rt: Runtime, credential: str, principal: Principal) -> bool:
    """Whether ``credential``, the bearer a long-lived response (an event stream) was opened with,
    still identifies ``principal``: not revoked, expired or signed out since."""
    async with rt.db.read_session() as session:
        if _is_instance_token(credential):
            if _Identities.instance is None:
                raise _unwired("instance-token")
            return await _Identities.instance(session, credential) is not None
        if _Identities.bearer is None:
            raise _unwired("bearer-token")
        identity = await _Identities.bearer(session, rt, credential)
    return identity is not None and identity.user.id == principal.user_id


_bearer = HTTPBearer(auto_error=False, description="Access token, API token (mct_…) or instance token.")


async def _principal_or_none(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal | None:
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        return None
    if _Identities.bearer is None or _Identities.touch_api_token is None:
        raise _unwired("bearer-token")
    rt = get_runtime(request)
    async with rt.db.read_session() as session:
        identity = await _Identities.bearer(session, rt, credentials.credentials)
        if identity is None:
            raise Unauthenticated("The token is invalid, expired or revoked; sign in again.")
        roles, grants = await access.grants_for_user(session, identity.user.id)
    token = identity.api_token
    principal = Principal(
        user_id=identity.user.id, email=identity.user.email, roles=roles, grants=grants,
        token_id=token.id if token else None,
        token_scopes=tuple(token.scopes) if token and token.scopes else None,
        kind="api_token" if token else "user",
        session_id=identity.session_id,
    )
    if token is not None:
        await _Identities.touch_api_token(rt, token)
    request.state.principal = principal
    return principal


async def optional_principal(request: Request, credentials: Annotated[
        HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal | None:
    return await _principal_or_none(request, credentials)


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]


def _policy(dependency: Callable[..., Awaitable[Any]], policy: str) -> Callable[..., Awaitable[Any]]:
    setattr(dependency, POLICY_ATTRIBUTE, policy)
    return dependency


def public() -> Any:
    async def allow_anyone() -> None:
        return None

    return Depends(_policy(allow_anyone, PUBLIC))


def _not_scoped(principal: Principal) -> Principal:
    """Routes without a permission of their own (the caller's session, their whole event stream)
    are the account's: an API token limited by scopes does not reach them, only one carrying
    every permission of its owner (no scopes) does."""
    if principal.token_scopes is not None:
        raise Forbidden("An API token limited by scopes cannot use this route; sign in, or use a token without "
                        "scopes.")
    return principal


def authenticated() -> Any:
    async def signed_in(request: Request, credentials: Annotated[
            HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
        principal = await _principal_or_none(request, credentials)
        if principal is None:
            raise Unauthenticated("Send Authorization: Bearer <token>.")
        return _not_scoped(principal)

    return Depends(_policy(signed_in, AUTHENTICATED))


def user_or_instance() -> Any:
    """Any signed-in caller, or an instance token (``mercato agent`` on the live stream,
    API.md "Sync and live"). The principal's ``kind`` says which; routes using this must
    narrow what an instance sees to its own instance. Policy: ``authenticated``."""
    async def signed_in_or_instance(request: Request, credentials: Annotated[
            HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
        if credentials is not None and _is_instance_token(credentials.credentials):
            principal = await _identify_instance(request, credentials.credentials)
            if principal is None:
                raise Unauthenticated("The instance token is invalid or revoked (the instance was deleted).")
            return principal
        principal = await _principal_or_none(request, credentials)
        if principal is None:
            raise Unauthenticated("Send Authorization: Bearer <token>.")
        return _not_scoped(principal)

    return Depends(_policy(signed_in_or_instance, AUTHENTICATED))


async def _authorized(request: Request, credentials: HTTPAuthorizationCredentials | None,
                      permission: Permission, *, missing: str) -> Principal:
    principal = await _principal_or_none(request, credentials)
    if principal is None:
        raise Unauthenticated(missing)
    if principal.condition_for(permission) is None:
        await _audit_denied(request, principal, permission)
        raise Forbidden(f"This needs the permission {permission.value!r}.")
    return principal


def requires(permission: Permission) -> Any:
    async def authorize(request: Request, credentials: Annotated[
            HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
        return await _authorized(request, credentials, permission, missing="Send Authorization: Bearer <token>.")

    return Depends(_policy(authorize, permission.value))


def requires_instance() -> Any:
    """Routes of the install agent (policy ``agent:connect``): an instance token only.

    No credentials or an unknown/revoked token: 401. A user's access or API token: 403
    (audited): these routes act for one instance, and an instance token opens nothing else.
    """
    async def authorize_instance(request: Request, credentials: Annotated[
            HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
        if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
            raise Unauthenticated("Send Authorization: Bearer <instance token>.")
        if not _is_instance_token(credentials.credentials):
            principal = await _principal_or_none(request, credentials)  # 401 when it is no valid token
            assert principal is not None
            await _audit_denied(request, principal, Permission.agent_connect)
            raise Forbidden("This route takes an instance token (mci_…), shown when the instance was registered.")
        principal = await _identify_instance(request, credentials.credentials)
        if principal is None:
            raise Unauthenticated("The instance token is invalid or revoked (the instance was deleted).")
        return principal

    return Depends(_policy(authorize_instance, Permission.agent_connect.value))


async def _audit_denied(request: Request, principal: Principal, permission: Permission) -> None:
    rt = get_runtime(request)
    route = request.scope.get("route")
    # The full path template (with the /api/v1 prefix): a route of an included router only
    # knows its own part of the path.
    templates = getattr(request.app.state, "route_templates", {})
    path = templates.get(id(route)) or request.url.path
    async with rt.db.transaction() as session:
        await audit(session, actor_id=principal.user_id, actor_email=principal.email,
                    action=AuditAction.authorization_denied, resource_type="route",
                    resource_id=f"{request.method} {path}",
                    after={"permission": permission.value}, result="denied")


# --- idempotency -------------------------------------------------------------------------------

def idempotent(*, required: bool) -> Any:
    """Claim the request's ``Idempotency-Key`` (see ``platform/idempotency.py``).

    Put it after the route's permission dependency: it needs the caller.
    """

    async def claim_key(request: Request, credentials: Annotated[
            HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str | None:
        key = idempotency.validate_key(request.headers.get(idempotency.HEADER), required=required)
        if key is None:
            return None
        principal = await _principal_or_none(request, credentials)
        owner = f"user:{principal.user_id}" if principal else f"anon:{request.client.host if request.client else '-'}"
        rt = get_runtime(request)
        body = await request.body()
        request.state.idempotency_claim = await idempotency.claim(
            rt.db, owner=owner, key=key, request_hash=idempotency.fingerprint(request.method, request.url.path, body),
            retention=timedelta(hours=rt.settings.idempotency_retention_hours),
            lease=timedelta(seconds=rt.settings.idempotency_lease_seconds),
        )
        return key

    return Depends(claim_key)


# --- introspection -------------------------------------------------------------------------------

def route_policy(route: APIRoute) -> str | None:
    """The declared policy of a route: a permission, ``public`` or ``authenticated``."""
    stack = list(route.dependant.dependencies)
    while stack:
        dependant = stack.pop()
        policy = getattr(dependant.call, POLICY_ATTRIBUTE, None)
        if policy is not None:
            return policy  # type: ignore[no-any-return]
        stack.extend(dependant.dependencies)
    return None


def api_routes(app: FastAPI) -> list[tuple[str, APIRoute]]:
    """Every API route with its full path (FastAPI keeps included routers as wrappers)."""
    out = []
    for path, route in routes_with_paths(app.routes):
        # Pages (web/pages.py PageRoute) are no part of the API: their own dependencies decide.
        if isinstance(route, APIRoute) and path and not getattr(route, "is_page", False):
            out.append((path, route))
    return out


def route_policies(app: FastAPI) -> dict[tuple[str, str], str | None]:
    out: dict[tuple[str, str], str | None] = {}
    for path, route in api_routes(app):
        for method in sorted(route.methods):
            out[(method, path)] = route_policy(route)
    return out


def requires_credential(permission: Permission, read_token: Callable[[Request], str | None]) -> Any:
    """``requires(permission)`` for clients that send their token elsewhere than
    ``Authorization: Bearer`` (the Open VSX CLI: ``X-OpenVSX-Token`` or ``?token=``).
    ``read_token`` finds it in the request; the checks and the audit of a refusal are the same."""
    async def authorize_credential(request: Request) -> Principal:
        token = read_token(request)
        credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=token) if token else None
        return await _authorized(request, credentials, permission, missing=(
            "Send a Mercato API token (mct_…): Authorization: Bearer <token> or ?token=<token>."))

    return Depends(_policy(authorize_credential, permission.value))
