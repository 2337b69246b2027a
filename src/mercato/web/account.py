"""Accounts in the browser: register, sign in, sign out, and the account page (profile,
password, API tokens, personal Open VSX registry tokens with the editor settings to paste, the
publisher application). The same services as /api/v1/auth, /me and /me/registry-tokens."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.permissions import Permission
from mercato.accounts import service as accounts
from mercato.accounts.errors import EmailTaken, InvalidCredentials, TokenNotFound, WeakPassword, WrongCurrentPassword
from mercato.accounts.schemas import ApiTokenCreate, RegisterRequest
from mercato.kit.clock import utcnow
from mercato.kit.errors import RateLimited
from mercato.openvsx import service as openvsx
from mercato.openvsx.errors import RegistryTokenNotFound
from mercato.openvsx.schemas import RegistryTokenCreate
from mercato.openvsx.service import PREFIX as OPENVSX_PREFIX
from mercato.platform.routing import ReadSession, RuntimeDep, WriteSession
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
        user = await accounts.register_user(session, rt, ip=_ip(request), email=str(body.email),
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
            pair = await accounts.sign_in(reader, session, rt, ip=_ip(request), email=values["email"].strip(),
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
    """Ends this browser's session like POST /api/v1/auth/logout: its refresh family is revoked;
    the account's other sign-ins go on."""
    if user is not None:
        account = await accounts.get_user(session, user.principal.user_id)
        await accounts.end_browser_session(session, user=account, refresh_token=user.refresh_token)
    response = redirect("/")
    web_session.clear_session_cookie(request, response)
    return response


# --- editor settings (docs/openvsx.md) --------------------------------------------------------

@dataclass(frozen=True)
class EditorSettings:
    """What to paste into VSCodium, code-server, Theia and ovsx for one registry URL: the store's
    public one (free extensions) or a personal one (``{store}/openvsx/t/{token}``: paid ones owned)."""

    public_url: str
    registry_url: str
    personal: bool

    @property
    def gallery(self) -> dict[str, str]:
        return {"serviceUrl": f"{self.registry_url}/vscode/gallery", "itemUrl": f"{self.registry_url}/vscode/item"}

    @property
    def vscodium(self) -> str:
        return json.dumps({"extensionsGallery": self.gallery}, indent=2)

    @property
    def code_server(self) -> str:
        return (f"export EXTENSIONS_GALLERY='{json.dumps(self.gallery)}'\n"
                "code-server --install-extension namespace.extension")

    @property
    def theia(self) -> str:
        return f"VSX_REGISTRY_URL={self.registry_url}/ yarn start"

    @property
    def ovsx(self) -> str:
        return (f"ovsx search hello -r {self.public_url}\n"
                f"ovsx show namespace.extension -r {self.public_url}\n"
                f"ovsx get namespace.extension -r {self.registry_url}")


def editor_settings(request: Request, secret: str | None = None) -> EditorSettings:
    store = str(request.base_url).rstrip("/")
    public = store + OPENVSX_PREFIX
    return EditorSettings(public_url=public, registry_url=f"{public}/t/{secret}" if secret else public,
                          personal=secret is not None)


# --- the account page --------------------------------------------------------------------------

async def _account(request: Request, session: AsyncSession, user: PageUser, *, status_code: int = 200,
                   **context: object) -> Response:
    account = await accounts.get_user(session, user.principal.user_id)
    tokens = await accounts.list_api_tokens(session, user_id=account.id)
    can_registry = user.principal.has(Permission.token_manage)
    registry_tokens = await openvsx.list_tokens(session, actor=user.principal) if can_registry else []
    applications = (await publishers.applications_of(session, account.id)
                    if user.principal.has(Permission.publisher_application_create) else [])
    values: dict[str, dict[str, str]] = {"profile": {"display_name": account.display_name},
                                         "password": {}, "token": {"expires_in_days": "90"}, "apply": {},
                                         "registry": {}}
    values.update(context.pop("values", {}))  # type: ignore[arg-type]
    registry_secret = context.pop("created_registry_token", None)
    return await render(request, "account/account.html", {
        "account": account, "tokens": tokens, "applications": applications, "values": values,
        "can_registry": can_registry, "registry_tokens": registry_tokens,
        "editor": editor_settings(request, registry_secret),  # type: ignore[arg-type]
        "errors": {"profile": {}, "password": {}, "token": {}, "apply": {}, "registry": {},
                   **context.pop("errors", {})},  # type: ignore[dict-item]
        "notice": request.query_params.get("done"),
        "can_apply": user.principal.has(Permission.publisher_application_create),
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
            async with accounts.reauthentication(rt, account):
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


@router.post("/account/registry-tokens")
async def create_registry_token(request: Request, user: TokenManager, session: WriteSession) -> Response:
    """Like POST /api/v1/me/registry-tokens: the token and its personal registry URL are shown on
    this answer only, inside the editor settings to paste."""
    values = form_values(await request.form(), "name")
    try:
        body = RegistryTokenCreate(name=values["name"].strip())
    except ValidationError as error:
        return await _account(request, session, user, status_code=422, values={"registry": values},
                              errors={"registry": validation_messages(error)})
    token, secret = await openvsx.create_token(session, actor=user.principal, name=body.name)
    return await _account(request, session, user, status_code=201, created_registry_token=secret,
                          created_registry_name=token.name)


@router.post("/account/registry-tokens/{token_id}/revoke")
async def revoke_registry_token(token_id: uuid.UUID, user: TokenManager, session: WriteSession) -> Response:
    """Like DELETE /api/v1/me/registry-tokens/{id}: the personal registry URL stops working at once."""
    try:
        await openvsx.revoke_token(session, actor=user.principal, token_id=token_id)
    except RegistryTokenNotFound:
        await session.rollback()  # already revoked (a second click): the page shows the current list either way
    return redirect("/account?done=registry-revoked#openvsx")


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
