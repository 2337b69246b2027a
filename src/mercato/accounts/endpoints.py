"""Accounts: registration, sign-in, the caller's profile, password and API tokens."""

from __future__ import annotations

import uuid
from contextlib import nullcontext
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from mercato.access import service as access
from mercato.access.dependencies import authenticated, public, requires
from mercato.access.errors import LastSuperAdmin, UnknownRole
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.accounts import service
from mercato.accounts.errors import (
    EmailTaken,
    InvalidCredentials,
    InvalidRefreshToken,
    InvalidScope,
    TokenNotFound,
    UserNotFound,
    WeakPassword,
    WrongCurrentPassword,
)
from mercato.accounts.schemas import (
    AdminUserCreate,
    AdminUserUpdate,
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenRead,
    LoginRequest,
    LogoutRequest,
    MeUpdate,
    PasswordChange,
    RefreshRequest,
    RegisterRequest,
    TokenResponse,
    UserRead,
)
from mercato.kit.clock import utcnow
from mercato.kit.errors import Forbidden, RateLimited, Unauthenticated
from mercato.kit.pagination import CursorParam, Limit, Total, decode_cursor, keyset_page, page_of
from mercato.kit.schemas import Page
from mercato.models import User
from mercato.platform.routing import ReadSession, RuntimeDep, TransactionalRoute, WriteSession

router = APIRouter(route_class=TransactionalRoute, tags=["accounts"])

Me = Annotated[Principal, authenticated()]


async def user_read(session, user: User) -> UserRead:  # type: ignore[no-untyped-def]
    return UserRead(id=user.id, email=user.email, display_name=user.display_name, is_active=user.is_active,
                    roles=await access.roles_of(session, user.id), created_at=user.created_at,
                    last_login_at=user.last_login_at)


def _ip(request: Request) -> str:
    return request.client.host if request.client else "-"


@router.post("/auth/register", status_code=201, response_model=UserRead, dependencies=[public()],
             responses=EmailTaken.responses(WeakPassword, RateLimited))
async def register(body: RegisterRequest, request: Request, session: WriteSession, rt: RuntimeDep) -> UserRead:
    """Create a user account (role `user`). The only public way in."""
    user = await service.register_user(session, rt, ip=_ip(request), email=str(body.email), password=body.password,
                               display_name=body.display_name)
    return await user_read(session, user)


@router.post("/auth/login", response_model=TokenResponse, dependencies=[public()],
             responses=InvalidCredentials.responses(RateLimited))
async def login(body: LoginRequest, request: Request, reader: ReadSession, session: WriteSession,
                rt: RuntimeDep) -> TokenResponse:
    """Exchange email and password for an access token (10 min) and a refresh token (7 days).

    Ten failures within five minutes, per account or per IP, lock further attempts
    with 429 and `Retry-After`. Unknown accounts and wrong passwords get the same answer.
    """
    pair = await service.sign_in(reader, session, rt, ip=_ip(request), email=body.email, password=body.password)
    return TokenResponse(access_token=pair.access_token, refresh_token=pair.refresh_token,
                         expires_in=pair.expires_in)


@router.post("/auth/refresh", response_model=TokenResponse, dependencies=[public()],
             responses=InvalidRefreshToken.responses(RateLimited))
async def refresh(body: RefreshRequest, request: Request, session: WriteSession, rt: RuntimeDep) -> TokenResponse:
    """Rotate a refresh token. Presenting an already rotated token revokes its whole family."""
    s = rt.settings
    keys = [f"ip:{_ip(request)}"]
    await rt.limiter.check(name="refresh", keys=keys, limit=s.refresh_attempts, window_seconds=s.refresh_window_seconds)
    try:
        pair = await service.refresh(session, rt, refresh_token=body.refresh_token)
    except service.RefreshReuse as reuse:
        await session.rollback()
        async with rt.db.transaction() as revoke:
            await service.revoke_reused_family(revoke, reuse)
        await rt.limiter.hit(name="refresh", keys=keys, limit=s.refresh_attempts,
                             window_seconds=s.refresh_window_seconds)
        raise InvalidRefreshToken(
            "This refresh token was already used; the session was ended. Sign in again.") from None
    except InvalidRefreshToken:
        await rt.limiter.hit(name="refresh", keys=keys, limit=s.refresh_attempts,
                             window_seconds=s.refresh_window_seconds)
        raise
    return TokenResponse(access_token=pair.access_token, refresh_token=pair.refresh_token,
                         expires_in=pair.expires_in)


@router.post("/auth/logout", status_code=204, responses=Unauthenticated.responses())
async def logout(me: Me, session: WriteSession, body: LogoutRequest | None = None) -> Response:
    """End this sign-in: its refresh token and its access tokens stop working at once. The
    account's other sign-ins (another browser, another machine) are not affected."""
    user = await service.get_user(session, me.user_id)
    await service.logout(session, user=user, refresh_token=body.refresh_token if body else None,
                         session_id=me.session_id)
    return Response(status_code=204)


@router.get("/me", response_model=UserRead, responses=Unauthenticated.responses())
async def get_me(me: Annotated[Principal, requires(Permission.account_read)], session: ReadSession) -> UserRead:
    return await user_read(session, await service.get_user(session, me.user_id))


@router.patch("/me", response_model=UserRead, responses=WrongCurrentPassword.responses(EmailTaken, RateLimited))
async def update_me(body: MeUpdate, me: Annotated[Principal, requires(Permission.account_update)],
                    session: WriteSession, rt: RuntimeDep) -> UserRead:
    """Change the display name, or the email (with `current_password`)."""
    user = await service.get_user(session, me.user_id)
    async with service.reauthentication(rt, user) if body.email is not None else nullcontext():
        user = await service.update_profile(session, rt, user=user, display_name=body.display_name,
                                            email=str(body.email) if body.email else None,
                                            current_password=body.current_password)
    return await user_read(session, user)


@router.post("/me/password", status_code=204, responses=WrongCurrentPassword.responses(WeakPassword, RateLimited))
async def change_password(body: PasswordChange, me: Annotated[Principal, requires(Permission.account_update)],
                          session: WriteSession, rt: RuntimeDep) -> Response:
    """Change the password (the current one is required). Every session of the account ends."""
    user = await service.get_user(session, me.user_id)
    async with service.reauthentication(rt, user):
        await service.change_password(session, rt, user=user, current=body.current_password,
                                      new=body.new_password)
    return Response(status_code=204)


@router.get("/me/tokens", response_model=Page[ApiTokenRead])
async def list_tokens(me: Annotated[Principal, requires(Permission.token_manage)], session: ReadSession,
                      cursor: CursorParam = None, limit: Limit = 20) -> Page[ApiTokenRead]:
    """Your API tokens not revoked, newest first."""
    page, next_cursor = page_of(await service.list_api_tokens(session, user_id=me.user_id),
                                key=lambda t: (t.created_at.isoformat(), str(t.id)), cursor=cursor, limit=limit,
                                descending=True)
    return Page(items=[ApiTokenRead.model_validate(t) for t in page], next_cursor=next_cursor)


@router.post("/me/tokens", status_code=201, response_model=ApiTokenCreated, responses=InvalidScope.responses())
async def create_token(body: ApiTokenCreate, me: Annotated[Principal, requires(Permission.token_manage)],
                       session: WriteSession) -> ApiTokenCreated:
    """Create an API token for the CLI or automation. The token is shown once."""
    if me.kind == "api_token":
        raise Forbidden("API tokens cannot create other API tokens; sign in with your password.")
    user = await service.get_user(session, me.user_id)
    expires_at = utcnow() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    token, secret = await service.create_api_token(session, user=user, grants=me.effective_grants(), name=body.name,
                                                   scopes=body.scopes, expires_at=expires_at)
    return ApiTokenCreated(**ApiTokenRead.model_validate(token).model_dump(), token=secret)


@router.delete("/me/tokens/{token_id}", status_code=204, responses=TokenNotFound.responses())
async def revoke_token(token_id: uuid.UUID, me: Annotated[Principal, requires(Permission.token_manage)],
                       session: WriteSession) -> Response:
    user = await service.get_user(session, me.user_id)
    await service.revoke_api_token(session, user=user, token_id=token_id)
    return Response(status_code=204)


# --- administration of users -------------------------------------------------------------------

admin_router = APIRouter(route_class=TransactionalRoute, tags=["admin"], prefix="/admin")


@admin_router.get("/users", response_model=Page[UserRead])
async def list_users(actor: Annotated[Principal, requires(Permission.user_read)], session: ReadSession,
                     q: Annotated[str | None, Query(max_length=100)] = None, active: bool | None = None,
                     cursor: CursorParam = None, limit: Limit = 20, total: Total = False) -> Page[UserRead]:
    """Users, newest first; `q` matches email and display name."""
    rows = await service.search_users(session, query=q, active=active, after=decode_cursor(cursor), limit=limit + 1)
    page, next_cursor = keyset_page(rows, limit)
    roles = await access.roles_of_users(session, [u.id for u in page])
    items = [UserRead(id=u.id, email=u.email, display_name=u.display_name, is_active=u.is_active, roles=roles[u.id],
                      created_at=u.created_at, last_login_at=u.last_login_at) for u in page]
    counted = await service.count_users(session, query=q, active=active) if total else None
    return Page[UserRead](items=items, next_cursor=next_cursor, total=counted)


@admin_router.post("/users", status_code=201, response_model=UserRead,
                   responses=EmailTaken.responses(WeakPassword, Forbidden, UnknownRole))
async def create_user(body: AdminUserCreate, actor: Annotated[Principal, requires(Permission.user_create)],
                      session: WriteSession, rt: RuntimeDep) -> UserRead:
    """Create an account with roles (e.g. a developer or reviewer). You may grant only roles
    whose permissions you hold yourself, so admin roles need a super admin."""
    user = await service.admin_create(session, rt, actor=actor, email=str(body.email), password=body.password,
                                      display_name=body.display_name, roles=body.roles)
    return await user_read(session, user)


@admin_router.patch("/users/{user_id}", response_model=UserRead,
                    responses=UserNotFound.responses(Forbidden, LastSuperAdmin, UnknownRole))
async def update_user(user_id: uuid.UUID, body: AdminUserUpdate, session: WriteSession,
                      actor: Annotated[Principal, requires(Permission.user_update)]) -> UserRead:
    """Change a user's display name, roles, or disable/enable them. Disabling or a role
    change ends the user's sessions at once."""
    user = await service.admin_change(session, actor=actor, user_id=user_id, display_name=body.display_name,
                                      is_active=body.is_active, roles=body.roles)
    return await user_read(session, user)
