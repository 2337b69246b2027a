"""Accounts in the browser: register, sign in, sign out, and the account page (profile,
password, API tokens, the publisher application). The same services as /api/v1/auth and /me."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.permissions import Permission
from mercato.accounts import endpoints as accounts_api
from mercato.accounts import service as accounts
from mercato.accounts.errors import EmailTaken, InvalidCredentials, TokenNotFound, WeakPassword, WrongCurrentPassword
from mercato.accounts.schemas import ApiTokenCreate, RegisterRequest
from mercato.kit.clock import utcnow
from mercato.kit.errors import RateLimited
from mercato.kit.routing import ReadSession, RuntimeDep, WriteSession
from mercato.publishers import service as publishers
from mercato.publishers.errors import ApplicationPending, SlugTaken
from mercato.publishers.schemas import ApplicationCreate
from mercato.web import session as web_session
from mercato.web.pages import field_errors, form_values, page_router, redirect, render, validation_messages
from mercato.web.session import OptionalUser, PageUser, page_requires

router = page_router()

AccountReader = Annotated[PageUser, page_requires(Permission.account_read)]
AccountWriter = Annotated[PageUser, page_requires(Permission.account_update)]
TokenManager = Annotated[PageUser, page_requires(Permission.token_manage)]
Applicant = Annotated[PageUser, page_requires(Permission.publisher_application_create)]


def _ip(request: Request) -> str:
    return request.client.host if request.client else "-"


# --- register, sign in, sign out ---------------------------------------------------------------

@router.get("/register")
async def register_page(request: Request, user: OptionalUser, next: str | None = None) -> Response:
    if user is not None:
        return redirect(web_session.safe_next(next))
    return await render(request, "account/register.html", {"values": {"next": web_session.safe_next(next)},
                                                           "errors": {}})


@router.post("/register")
async def register(request: Request, session: WriteSession, rt: RuntimeDep) -> Response:
    values = form_values(await request.form(), "email", "display_name", "password", "next")
    errors: dict[str, str] = {}
    try:
        body = RegisterRequest(email=values["email"], password=values["password"],
                               display_name=values["display_name"])
        user = await accounts_api.register_user(session, rt, ip=_ip(request), email=str(body.email),
                                                password=body.password, display_name=body.display_name)
        pair = await accounts.start_session(session, rt, user_id=user.id)
    except ValidationError as error:
        errors = validation_messages(error)
    except EmailTaken:
        errors = {"email": "An account with this email exists. Sign in instead, or use another address."}
    except WeakPassword as error:
        errors = {"password": (field_errors(error).get("password") or error.detail).capitalize()}
    except RateLimited as error:
        errors = {"form": error.detail}
    if errors:
        await session.rollback()
        return await render(request, "account/register.html", {"values": values, "errors": errors}, status_code=422)
    response = redirect(web_session.safe_next(values["next"]))
    web_session.set_session_cookie(request, response, pair.refresh_token)
    return response


@router.get("/login")
async def login_page(request: Request, user: OptionalUser, next: str | None = None) -> Response:
    if user is not None:
        return redirect(web_session.safe_next(next))
    return await render(request, "account/login.html", {"values": {"next": web_session.safe_next(next)},
                                                        "errors": {}})


@router.post("/login")
async def login(request: Request, reader: ReadSession, session: WriteSession, rt: RuntimeDep) -> Response:
    values = form_values(await request.form(), "email", "password", "next")
    values["next"] = web_session.safe_next(values["next"])
    errors: dict[str, str] = {}
    if not values["email"].strip():
        errors["email"] = "Enter your email address."
    if not values["password"]:
        errors["password"] = "Enter your password."
    if not errors:
        try:
            pair = await accounts_api.sign_in(reader, session, rt, ip=_ip(request), email=values["email"].strip(),
                                              password=values["password"])
        except InvalidCredentials:
            errors["form"] = "That email and password do not match an account. Check them and try again."
        except RateLimited as error:
            errors["form"] = error.detail
    if errors:
        return await render(request, "account/login.html", {"values": values, "errors": errors}, status_code=422,
                            headers={"Retry-After": "60"} if "form" in errors and "many" in errors["form"] else None)
    response = redirect(values["next"])
    web_session.set_session_cookie(request, response, pair.refresh_token)
    return response


@router.post("/logout")
async def logout(request: Request, user: OptionalUser, session: WriteSession) -> Response:
    """Ends the session like POST /api/v1/auth/logout: the family is revoked, access tokens die."""
    if user is not None:
        account = await accounts.get_user(session, user.principal.user_id)
        await accounts.logout(session, user=account, refresh_token=user.refresh_token)
    response = redirect("/")
    web_session.clear_session_cookie(request, response)
    return response


# --- the account page --------------------------------------------------------------------------

async def _account(request: Request, session: AsyncSession, user: PageUser, *, status_code: int = 200,
                   **context: object) -> Response:
    account = await accounts.get_user(session, user.principal.user_id)
    tokens = await accounts.list_api_tokens(session, user_id=account.id)
    applications = (await publishers.applications_of(session, account.id)
                    if user.principal.has(Permission.publisher_application_create) else [])
    values: dict[str, dict[str, str]] = {"profile": {"display_name": account.display_name},
                                         "password": {}, "token": {"expires_in_days": "90"}, "apply": {}}
    values.update(context.pop("values", {}))  # type: ignore[arg-type]
    return await render(request, "account/account.html", {
        "account": account, "tokens": tokens, "applications": applications, "values": values,
        "errors": {"profile": {}, "password": {}, "token": {}, "apply": {}, **context.pop("errors", {})},  # type: ignore[dict-item]
        "notice": request.query_params.get("done"), "can_apply": user.principal.has(Permission.publisher_application_create),
        **context}, status_code=status_code)


@router.get("/account")
async def account_page(request: Request, user: AccountReader, session: ReadSession) -> Response:
    return await _account(request, session, user)


@router.post("/account/profile")
async def update_profile(request: Request, user: AccountWriter, session: WriteSession, rt: RuntimeDep) -> Response:
    values = form_values(await request.form(), "display_name")
    if len(values["display_name"]) > 100:
        return await _account(request, session, user, status_code=422, values={"profile": values},
                              errors={"profile": {"display_name": "At most 100 characters."}})
    account = await accounts.get_user(session, user.principal.user_id)
    await accounts.update_profile(session, rt, user=account, display_name=values["display_name"], email=None,
                                  current_password=None)
    return redirect("/account?done=profile")


@router.post("/account/password")
async def change_password(request: Request, user: AccountWriter, session: WriteSession, rt: RuntimeDep) -> Response:
    """Like POST /api/v1/me/password: every session of the account ends; this browser gets a new one."""
    values = form_values(await request.form(), "current_password", "new_password")
    account = await accounts.get_user(session, user.principal.user_id)
    errors: dict[str, str] = {}
    if not values["current_password"]:
        errors["current_password"] = "Enter your current password."
    else:
        try:
            async with accounts_api.reauthentication(rt, account):
                await accounts.change_password(session, rt, user=account, current=values["current_password"],
                                               new=values["new_password"])
        except WrongCurrentPassword:
            errors["current_password"] = "That is not your current password."
        except WeakPassword as error:
            errors["new_password"] = (field_errors(error).get("new_password") or error.detail).capitalize()
        except RateLimited as error:
            errors["current_password"] = error.detail
    if errors:
        await session.rollback()
        return await _account(request, session, user, status_code=422, errors={"password": errors})
    pair = await accounts.start_session(session, rt, user_id=account.id)
    response = redirect("/account?done=password")
    web_session.set_session_cookie(request, response, pair.refresh_token)
    return response


@router.post("/account/tokens")
async def create_token(request: Request, user: TokenManager, session: WriteSession) -> Response:
    """Like POST /api/v1/me/tokens; the token is shown on this answer only."""
    values = form_values(await request.form(), "name", "expires_in_days")
    try:
        body = ApiTokenCreate(name=values["name"], scopes=[],
                              expires_in_days=int(values["expires_in_days"]) if values["expires_in_days"] else None)
    except (ValidationError, ValueError) as error:
        messages = validation_messages(error) or {"expires_in_days": "Enter a whole number of days."}
        return await _account(request, session, user, status_code=422, values={"token": values},
                              errors={"token": messages})
    account = await accounts.get_user(session, user.principal.user_id)
    expires_at = utcnow() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    token, secret = await accounts.create_api_token(session, user=account, grants=dict(user.principal.grants),
                                                    name=body.name, scopes=body.scopes, expires_at=expires_at)
    return await _account(request, session, user, status_code=201, created_token=secret, created_name=token.name)


@router.post("/account/tokens/{token_id}/revoke")
async def revoke_token(token_id: uuid.UUID, user: TokenManager, session: WriteSession) -> Response:
    account = await accounts.get_user(session, user.principal.user_id)
    try:
        await accounts.revoke_api_token(session, user=account, token_id=token_id)
    except TokenNotFound:
        pass  # already revoked (a second click): the page shows the current list either way
    return redirect("/account?done=revoked#tokens")


@router.post("/account/publisher-application")
async def apply(request: Request, user: Applicant, session: WriteSession) -> Response:
    """Like POST /api/v1/publisher-applications."""
    values = form_values(await request.form(), "slug", "name", "description", "website")
    errors: dict[str, str] = {}
    try:
        body = ApplicationCreate(slug=values["slug"], name=values["name"], description=values["description"],
                                 website=values["website"] or None)
        await publishers.apply(session, actor=user.principal, slug=body.slug, name=body.name,
                               description=body.description, website=str(body.website) if body.website else None)
    except ValidationError as error:
        errors = validation_messages(error)
    except SlugTaken as error:
        errors = {"slug": error.detail}
    except ApplicationPending as error:
        errors = {"form": error.detail}
    if errors:
        await session.rollback()
        return await _account(request, session, user, status_code=422, values={"apply": values},
                              errors={"apply": errors})
    return redirect("/account?done=applied#publisher")
