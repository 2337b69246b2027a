"""Accounts: registration, sign-in, token rotation, password changes and API tokens.

Callers pass the session and own the transaction; nothing here commits.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access import service as access
from mercato.access.errors import LastSuperAdmin
from mercato.access.permissions import Condition, Permission
from mercato.access.principal import Principal
from mercato.accounts import repository
from mercato.accounts.errors import (
    AccountDisabled,
    EmailTaken,
    InvalidCredentials,
    InvalidRefreshToken,
    InvalidScope,
    TokenNotFound,
    UserNotFound,
    WeakPassword,
    WrongCurrentPassword,
)
from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.kit.clock import utcnow
from mercato.kit.errors import Forbidden, found_or_raise
from mercato.kit.passwords import policy_problems
from mercato.kit.security import API_TOKEN_PREFIX, REFRESH_TOKEN_PREFIX, new_secret, secret_digest
from mercato.models import ApiToken, RefreshToken, User
from mercato.platform.runtime import Runtime
from mercato.policies import service as policies


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class BearerIdentity:
    user: User
    api_token: ApiToken | None
    session_id: uuid.UUID | None = None


def check_password_policy(password: str, *, email: str | None, field: str = "password") -> None:
    problems = policy_problems(password, email=email)
    if problems:
        raise WeakPassword(f"The password {problems[0]}.", errors=[
            {"loc": ["body", field], "msg": f"password {p}", "type": "weak_password"} for p in problems])


async def create_user(session: AsyncSession, rt: Runtime, *, email: str, password: str, display_name: str = "",
                      roles: list[str] | None = None) -> User:
    check_password_policy(password, email=email)
    password_hash = await rt.passwords.hash_async(password)  # before the first write: SQLite has one writer
    if await repository.email_exists(session, email):
        raise EmailTaken("Sign in instead, or use another email address.")
    now = utcnow()
    try:  # the check above races with a concurrent registration on PostgreSQL; the unique key decides
        user = await repository.add(session, User(
            id=uuid.uuid4(), email=email.strip(), email_key=repository.email_key(email),
            display_name=display_name.strip(), password_hash=password_hash, is_active=True, token_version=1,
            created_at=now, updated_at=now,
        ))
    except IntegrityError as error:
        if not _is_email_conflict(error):
            raise
        raise EmailTaken("Sign in instead, or use another email address.") from None
    await access.set_user_roles(session, user.id, roles if roles is not None else ["user"])
    await publish(session, CloudEvent(type="user.registered", subject=str(user.id),
                                      data={"user_id": str(user.id), "email": user.email}))
    return user


def _is_email_conflict(error: IntegrityError) -> bool:
    """A unique violation on ``users.email_key`` (SQLite and PostgreSQL both name the column)."""
    return "email_key" in str(error.orig)


async def display_names(session: AsyncSession, user_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Display names of these users, read at once (missing users are left out)."""
    return await repository.display_names(session, user_ids)


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    return found_or_raise(await repository.get(session, user_id), UserNotFound, f"There is no user with id {user_id}.")


async def verify_login(session: AsyncSession, rt: Runtime, *, email: str, password: str) -> uuid.UUID:
    """The user id for a correct email and password (read-only: hashing runs outside the write lock).

    Unknown accounts, wrong passwords and disabled accounts get the same answer (T7).
    """
    user = await repository.by_email(session, email)
    ok = await rt.passwords.verify_async(user.password_hash if user else None, password)
    if not ok or user is None or not user.is_active:
        raise InvalidCredentials("Check the email and password and try again.")
    return user.id


async def start_session(session: AsyncSession, rt: Runtime, *, user_id: uuid.UUID) -> TokenPair:
    user = await get_user(session, user_id)
    if not user.is_active:
        raise InvalidCredentials("Check the email and password and try again.")
    user.last_login_at = utcnow()
    return await _issue(session, rt, user, family_id=uuid.uuid4())


async def _issue(session: AsyncSession, rt: Runtime, user: User, *, family_id: uuid.UUID) -> TokenPair:
    refresh = new_secret(REFRESH_TOKEN_PREFIX)
    now = utcnow()
    await repository.add_refresh(session, RefreshToken(
        id=uuid.uuid4(), user_id=user.id, family_id=family_id, token_hash=secret_digest(refresh), created_at=now,
        expires_at=now + timedelta(days=rt.settings.refresh_token_days),
    ))
    access_token, expires_in = rt.tokens.issue_access(user_id=user.id, token_version=user.token_version,
                                                      session_id=family_id)
    return TokenPair(access_token=access_token, refresh_token=refresh, expires_in=expires_in)


class RefreshReuse(Exception):
    """A rotated refresh token came back: its family must be revoked and stay so.

    Carries plain values, not the ORM row: the caller rolls the request's session back
    (which expires every loaded row) before revoking the family in a transaction of its own.
    """

    def __init__(self, token: RefreshToken) -> None:
        super().__init__("refresh token reuse")
        self.family_id: uuid.UUID = token.family_id
        self.user_id: uuid.UUID = token.user_id


async def refresh(session: AsyncSession, rt: Runtime, *, refresh_token: str) -> TokenPair:
    """Rotate a refresh token. Reuse of a rotated token revokes its whole family (T3)."""
    now = utcnow()
    token = await repository.refresh_by_hash(session, secret_digest(refresh_token))
    if token is None or token.revoked_at is not None or token.expires_at <= now:
        raise InvalidRefreshToken("Sign in again.")
    if token.rotated_at is not None or not await repository.mark_rotated(session, token.id, now):
        raise RefreshReuse(token)
    user = await repository.get(session, token.user_id)
    if user is None or not user.is_active:
        raise InvalidRefreshToken("Sign in again.")
    return await _issue(session, rt, user, family_id=token.family_id)


async def session_user(session: AsyncSession, *, refresh_token: str) -> User | None:
    """The user of a browser session (web/session.py): its refresh token is valid now, that is
    not expired, rotated or revoked, and the account is active. Read-only: a page session
    does not rotate, so sign-out, a password change or disabling the account end it."""
    token = await repository.refresh_by_hash(session, secret_digest(refresh_token))
    if token is None or token.revoked_at is not None or token.rotated_at is not None or token.expires_at <= utcnow():
        return None
    user = await repository.get(session, token.user_id)
    return user if user is not None and user.is_active else None


async def end_browser_session(session: AsyncSession, *, user: User, refresh_token: str) -> None:
    """Sign-out from the pages (web/account.py): a browser session is its refresh token alone
    (no access tokens are issued to it), so revoking its family ends it; the account's other
    sign-ins and API tokens go on."""
    token = await repository.refresh_by_hash(session, secret_digest(refresh_token))
    if token is not None and token.user_id == user.id:
        await repository.revoke_family(session, token.family_id, utcnow())


async def revoke_reused_family(session: AsyncSession, reuse: RefreshReuse) -> None:
    await repository.revoke_family(session, reuse.family_id, utcnow())
    await audit(session, actor_id=reuse.user_id, actor_email=None, action=AuditAction.refresh_reuse,
                resource_type="refresh_token_family", resource_id=reuse.family_id, result="denied")


async def logout(session: AsyncSession, *, user: User, refresh_token: str | None,
                 session_id: uuid.UUID | None) -> None:
    """End this sign-in (T4): its refresh family is revoked, and with it every access token
    issued to it, at once. The account's other sign-ins (a browser, another machine) go on.
    An access token from before sign-ins were named (no ``sid``) can only be ended with all
    of the account's access tokens."""
    now = utcnow()
    ended: set[uuid.UUID] = set()
    if refresh_token:
        token = await repository.refresh_by_hash(session, secret_digest(refresh_token))
        if token is not None and token.user_id == user.id:
            ended.add(token.family_id)
    if session_id is not None:
        ended.add(session_id)
    for family_id in ended:
        await repository.revoke_family(session, family_id, now)
    if session_id is None:
        await repository.bump_token_version(session, user.id)


async def change_password(session: AsyncSession, rt: Runtime, *, user: User, current: str, new: str) -> None:
    if not await rt.passwords.verify_async(user.password_hash, current):
        raise WrongCurrentPassword("Enter your current password to change it.")
    check_password_policy(new, email=user.email, field="new_password")
    user.password_hash = await rt.passwords.hash_async(new)
    await repository.revoke_all_refresh(session, user.id, utcnow())
    await repository.revoke_all_api_tokens(session, user.id, utcnow())  # a leaked password may have made them
    await repository.bump_token_version(session, user.id)
    await audit(session, actor_id=user.id, actor_email=user.email, action=AuditAction.password_change,
                resource_type="user", resource_id=user.id)
    await publish(session, CloudEvent(type="user.password_changed", subject=str(user.id),
                                      data={"user_id": str(user.id)}))


async def update_profile(session: AsyncSession, rt: Runtime, *, user: User, display_name: str | None,
                         email: str | None, current_password: str | None) -> User:
    """Display name changes freely; an email change needs the current password (T10)."""
    changed: list[str] = []
    if email is not None and repository.email_key(email) != user.email_key:
        if current_password is None or not await rt.passwords.verify_async(user.password_hash, current_password):
            raise WrongCurrentPassword("Changing the email needs your current password in current_password.")
        if await repository.email_exists(session, email):
            raise EmailTaken("Another account uses this email address.")
        before = user.email
        user.email, user.email_key = email.strip(), repository.email_key(email)
        try:  # flushed here, not at commit, so a concurrent change to the same address is a 409
            await session.flush()
        except IntegrityError as error:
            if not _is_email_conflict(error):
                raise
            raise EmailTaken("Another account uses this email address.") from None
        changed.append("email")
        await audit(session, actor_id=user.id, actor_email=user.email, action=AuditAction.email_change,
                    resource_type="user", resource_id=user.id, before={"email": before}, after={"email": user.email})
    if display_name is not None and display_name.strip() != user.display_name:
        user.display_name = display_name.strip()
        changed.append("display_name")
    if changed:
        user.updated_at = utcnow()
        await publish(session, CloudEvent(type="user.updated", subject=str(user.id),
                                          data={"user_id": str(user.id), "changed": changed}))
    return user


async def admin_update(session: AsyncSession, *, actor_id: uuid.UUID, actor_email: str,
                       actor_grants: dict[str, Condition], user_id: uuid.UUID, display_name: str | None,
                       is_active: bool | None, roles: list[str] | None) -> User:
    """An admin changes an account: display name, roles, enabled. One audit row per change.

    An admin may only hand out or take away roles whose permissions they hold themselves,
    and only touch accounts that hold no more than they do (a marketplace admin cannot
    disable a super admin).
    """
    user = await get_user(session, user_id)
    before_roles = await access.roles_of(session, user.id)
    before = {"display_name": user.display_name, "is_active": user.is_active, "roles": before_roles}
    if await access.roles_beyond(session, actor_grants, before_roles) and (roles is not None or is_active is not None):
        raise Forbidden("This account holds permissions you do not; only a super admin changes it.")
    changes: list[AuditAction] = []
    if display_name is not None and display_name.strip() != user.display_name:
        user.display_name = display_name.strip()
        changes.append(AuditAction.user_update)
    if roles is not None and sorted(set(roles)) != before_roles:
        await access.ensure_roles_exist(session, roles)
        beyond = await access.roles_beyond(session, actor_grants, sorted(set(roles) ^ set(before_roles)))
        if beyond:
            raise Forbidden(f"You cannot grant or remove {', '.join(beyond)}: it carries permissions you do not hold.")
        if "super_admin" in before_roles and "super_admin" not in roles:
            await _keep_one_super_admin(session, excluding=user.id, error=LastSuperAdmin)
        await access.set_user_roles(session, user.id, roles)
        changes.append(AuditAction.user_roles_change)
    if is_active is not None and is_active != user.is_active:
        if not is_active and "super_admin" in before_roles:
            await _keep_one_super_admin(session, excluding=user.id, error=LastSuperAdmin)
        user.is_active = is_active
        changes.append(AuditAction.user_enable if is_active else AuditAction.user_disable)
        await publish(session, CloudEvent(type="user.enabled" if is_active else "user.disabled",
                                          subject=str(user.id), data={"user_id": str(user.id)}))
    if not changes:
        return user
    if AuditAction.user_roles_change in changes or AuditAction.user_disable in changes or \
            AuditAction.user_enable in changes:
        # T4: disabling or changing roles ends the user's tokens at once
        await repository.revoke_all_refresh(session, user.id, utcnow())
        await repository.bump_token_version(session, user.id)
    user.updated_at = utcnow()
    after = {"display_name": user.display_name, "is_active": user.is_active,
             "roles": await access.roles_of(session, user.id)}
    # One request, one row: its action names the change, or user:update when several.
    action = changes[0] if len(changes) == 1 else AuditAction.user_update
    await audit(session, actor_id=actor_id, actor_email=actor_email, action=action,
                resource_type="user", resource_id=user.id, before=before, after=after)
    await session.refresh(user)
    return user


async def _keep_one_super_admin(session: AsyncSession, *, excluding: uuid.UUID, error: type[Exception]) -> None:
    if not [uid for uid in await access.active_super_admins(session) if uid != excluding]:
        raise error("Grant super_admin to another active account first.")


async def count_users(session: AsyncSession, *, query: str | None, active: bool | None) -> int:
    return await repository.count(session, query=query, active=active)


async def search_users(session: AsyncSession, *, query: str | None, active: bool | None,
                       after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[User]:
    return await repository.search(session, query=query, active=active, after=after, limit=limit)


# --- API tokens -------------------------------------------------------------------------------

async def create_api_token(session: AsyncSession, *, user: User, grants: dict[str, object], name: str,
                           scopes: list[str], expires_at: datetime | None) -> tuple[ApiToken, str]:
    """Create a token; its secret is returned once and stored only as a hash (T9)."""
    valid = {p.value for p in Permission}
    errors = []
    for index, scope in enumerate(scopes):
        permission = scope.partition("@")[0]
        if permission not in valid:
            errors.append({"loc": ["body", "scopes", index], "msg": f"unknown permission {permission!r}",
                           "type": "invalid_scope"})
        elif permission not in grants:
            errors.append({"loc": ["body", "scopes", index], "msg": f"you do not hold {permission!r}",
                           "type": "invalid_scope"})
    if errors:
        raise InvalidScope("A token can only carry permissions you hold.", errors=errors)
    secret = new_secret(API_TOKEN_PREFIX)
    token = ApiToken(id=uuid.uuid4(), user_id=user.id, name=name.strip(), hint=secret[:10],
                     token_hash=secret_digest(secret), scopes=sorted(set(scopes)), created_at=utcnow(),
                     expires_at=expires_at)
    await repository.add_api_token(session, token)
    await audit(session, actor_id=user.id, actor_email=user.email, action=AuditAction.token_create,
                resource_type="api_token", resource_id=token.id,
                after={"name": token.name, "scopes": token.scopes, "expires_at": expires_at})
    return token, secret


async def list_api_tokens(session: AsyncSession, *, user_id: uuid.UUID) -> list[ApiToken]:
    return await repository.api_tokens_of(session, user_id)


async def revoke_api_token(session: AsyncSession, *, user: User, token_id: uuid.UUID) -> None:
    token = found_or_raise(await repository.api_token_of(session, user.id, token_id),
                           TokenNotFound, f"You have no active API token with id {token_id}.")
    token.revoked_at = utcnow()
    await audit(session, actor_id=user.id, actor_email=user.email, action=AuditAction.token_revoke,
                resource_type="api_token", resource_id=token.id, before={"name": token.name})


# --- authentication of a bearer credential ---------------------------------------------------

API_TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


async def identify_bearer(session: AsyncSession, rt: Runtime, credential: str) -> BearerIdentity | None:
    """The user behind an access token or API token, or None when it is not valid now."""
    if credential.startswith(API_TOKEN_PREFIX):
        token = await repository.api_token_by_hash(session, secret_digest(credential))
        now = utcnow()
        if token is None or token.revoked_at is not None or (token.expires_at and token.expires_at <= now):
            return None
        user = await repository.get(session, token.user_id)
        if user is None or not user.is_active:
            return None
        return BearerIdentity(user=user, api_token=token)
    claims = rt.tokens.read_access(credential)
    if claims is None:
        return None
    user = await repository.get(session, claims.user_id)
    if user is None or not user.is_active or user.token_version != claims.token_version:
        return None
    if claims.session_id is not None and not await repository.session_live(session, claims.session_id):
        return None  # that sign-in was ended (logout, refresh-token reuse)
    return BearerIdentity(user=user, api_token=None, session_id=claims.session_id)


def ensure_active(user: User) -> None:
    if not user.is_active:
        raise AccountDisabled()


async def touch_api_token_if_stale(rt: Runtime, token: ApiToken) -> None:
    """Record ``last_used_at``, at most once a minute per token (it costs a write)."""
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at >= API_TOKEN_TOUCH_INTERVAL:
        async with rt.db.transaction() as session:
            await repository.touch_api_token(session, token.id, now)


async def find_by_email(session: AsyncSession, email: str) -> User:
    return found_or_raise(await repository.by_email(session, email),
                          UserNotFound, f"There is no account with the email {email!r}.")


async def admin_create(session: AsyncSession, rt: Runtime, *, actor: Principal, email: str, password: str,
                       display_name: str, roles: list[str]) -> User:
    """An admin creates an account with roles (``POST /admin/users`` and the admin console).
    Only roles whose permissions the actor holds may be granted, so admin roles need a super admin."""
    await access.ensure_roles_exist(session, roles)
    beyond = await access.roles_beyond(session, actor.effective_grants(), roles)
    if beyond:  # e.g. a marketplace admin creating an admin, or a custom role carrying role:update
        raise Forbidden(f"You cannot grant {', '.join(beyond)}: it carries permissions you do not hold.")
    user = await create_user(session, rt, email=email, password=password, display_name=display_name, roles=roles)
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.user_create,
                resource_type="user", resource_id=user.id, after={"email": user.email, "roles": sorted(set(roles))})
    return user


async def admin_change(session: AsyncSession, *, actor: Principal, user_id: uuid.UUID, display_name: str | None,
                       is_active: bool | None, roles: list[str] | None) -> User:
    """``PATCH /admin/users/{id}`` and the admin console: nobody disables themselves or changes
    their own roles; disabling or a role change ends the user's sessions at once."""
    if user_id == actor.user_id and (is_active is False or roles is not None):
        raise Forbidden("You cannot disable yourself or change your own roles.")
    return await admin_update(session, actor_id=actor.user_id, actor_email=actor.email,
                              actor_grants=actor.effective_grants(), user_id=user_id, display_name=display_name,
                              is_active=is_active, roles=roles)


# --- sign-up, sign-in and re-authentication with their limits (the API and the web pages) -------------

@asynccontextmanager
async def reauthentication(rt: Runtime, user: User) -> AsyncIterator[None]:
    """Wrong current passwords count toward the account's sign-in lockout (T7, T10), so a
    stolen session cannot become an unlimited oracle for the password."""
    s = rt.settings
    account = f"account:{user.email_key}"
    async with rt.limiter.attempt(name="login", keys=[account], guarded=[account], limit=s.login_attempts,
                                  window_seconds=s.login_window_seconds) as attempt:
        try:
            yield
        except WrongCurrentPassword:
            await attempt.failed()
            raise


async def register_user(session: AsyncSession, rt: Runtime, *, ip: str, email: str, password: str,
                        display_name: str) -> User:
    """Registration as the API and the register page do it: rate-limited per client address
    (runtime policy ``signups_per_address_per_hour``)."""
    limit = (await policies.current(session)).signups_per_address_per_hour
    await rt.limiter.check(name="register", keys=[f"ip:{ip}"], limit=limit, window_seconds=3600)
    await rt.limiter.hit(name="register", keys=[f"ip:{ip}"], limit=limit, window_seconds=3600)
    return await create_user(session, rt, email=email, password=password, display_name=display_name)


async def sign_in(reader: AsyncSession, session: AsyncSession, rt: Runtime, *, ip: str, email: str,
                  password: str) -> TokenPair:
    """Sign-in as the API and the sign-in page do it: the lockout per account and per IP, then a session."""
    s = rt.settings
    account = f"account:{repository.email_key(email)}"
    # Attempts still running on the account count too: a burst of concurrent guesses must
    # not all pass a check made before any of them failed.
    async with rt.limiter.attempt(name="login", keys=[account, f"ip:{ip}"], guarded=[account],
                                  limit=s.login_attempts, window_seconds=s.login_window_seconds) as attempt:
        try:
            user_id = await verify_login(reader, rt, email=email, password=password)
        except InvalidCredentials:
            await attempt.failed()
            raise
    return await start_session(session, rt, user_id=user_id)
