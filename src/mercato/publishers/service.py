"""Publishers: applications to become one, creation, profile edits and members."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access import service as access
from mercato.access.permissions import Condition, Permission
from mercato.access.principal import Principal
from mercato.accounts import service as accounts
from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.kit.clock import utcnow
from mercato.kit.errors import Forbidden, found_or_raise
from mercato.models import Publisher, PublisherApplication
from mercato.publishers import repository
from mercato.publishers.errors import (
    ApplicationDecided,
    ApplicationNotFound,
    ApplicationPending,
    LastOwner,
    MemberNotFound,
    PublisherNotFound,
    SlugTaken,
)

# Listings show their publisher's name, slug and badge. Whoever keeps copies of what a listing
# shows (the catalog's cached details) hands in at wiring time (``mercato.app``) what to drop,
# in the changing transaction, when those change: the catalog calls this module, so this
# module never imports the catalog.
ShownOnListingsChanged = Callable[[AsyncSession, uuid.UUID], Awaitable[None]]


class _Listeners:
    shown_on_listings_changed: ShownOnListingsChanged | None = None


def register_shown_on_listings_changed(evict: ShownOnListingsChanged) -> None:
    """``evict(session, publisher_id)`` runs when a change of the publisher shows on its listings."""
    _Listeners.shown_on_listings_changed = evict


async def get(session: AsyncSession, slug: str) -> Publisher:
    return found_or_raise(await repository.by_slug(session, slug),
                          PublisherNotFound, f"There is no publisher {slug!r}.")


async def get_by_id(session: AsyncSession, publisher_id: uuid.UUID) -> Publisher:
    return found_or_raise(await repository.by_id(session, publisher_id),
                          PublisherNotFound, f"There is no publisher {publisher_id}.")


async def publisher_ids_of(session: AsyncSession, user_id: uuid.UUID) -> list[uuid.UUID]:
    return await repository.publisher_ids_of(session, user_id)


async def publisher_ids_for(session: AsyncSession, actor: Principal, permission: Permission, *,
                            owners_only: bool = False) -> list[uuid.UUID]:
    """The publishers the actor acts for under ``permission``'s ``own`` condition: those they
    belong to (``owners_only``: own), narrowed to the publishers an API token's scope names
    (``webhook:manage@acme`` reaches acme's webhooks, not another publisher's)."""
    targets = actor.bound_targets(permission)
    found = []
    for publisher_id in await repository.publisher_ids_of(session, actor.user_id):
        if owners_only and await repository.member_role(session, publisher_id, actor.user_id) != "owner":
            continue
        if targets is not None:
            publisher = await repository.by_id(session, publisher_id)
            if publisher is None or publisher.slug not in targets:
                continue
        found.append(publisher_id)
    return found


async def member_ids(session: AsyncSession, publisher_id: uuid.UUID) -> list[uuid.UUID]:
    """Everyone who acts for the publisher (notifications addressed to "the publisher")."""
    return [member.user_id for member, _user in await repository.members(session, publisher_id)]


async def member_role(session: AsyncSession, publisher_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
    return await repository.member_role(session, publisher_id, user_id)


async def acts_for(session: AsyncSession, actor: Principal, permission: Permission, publisher: Publisher) -> bool:
    """Whether the actor holds ``permission`` for this publisher: ``any``, or ``own`` as one
    of its members (an API token's scope may name the publisher's slug). Callers answer a
    refusal their own way (404 where the publisher's business is nobody else's, else 403)."""
    condition = actor.condition_for(permission, publisher.slug)
    if condition is Condition.any:
        return True
    return condition is Condition.own and await repository.member_role(session, publisher.id, actor.user_id) is not None


async def require_owner_or_any(session: AsyncSession, actor: Principal, permission: Permission,
                               publisher: Publisher) -> None:
    """``any`` passes; ``own`` needs the caller to be an owner of this publisher."""
    condition = actor.condition_for(permission, publisher.slug)
    if condition is Condition.any:
        return
    if condition is Condition.own and await repository.member_role(session, publisher.id, actor.user_id) == "owner":
        return
    raise Forbidden(f"Only an owner of {publisher.slug!r} or an admin may do this.")


async def _create(session: AsyncSession, *, slug: str, name: str, description: str, website: str | None,
                  owner_id: uuid.UUID, publisher_id: uuid.UUID | None = None) -> Publisher:
    now = utcnow()
    publisher = Publisher(id=publisher_id or uuid.uuid4(), slug=slug, name=name, description=description,
                          website=website, verified=False, created_at=now, updated_at=now)
    if await repository.slug_taken(session, slug) or not await repository.add(session, publisher):
        raise SlugTaken(f"The slug {slug!r} is taken; choose another.")
    await repository.upsert_member(session, publisher_id=publisher.id, user_id=owner_id, role="owner", at=now)
    await access.grant_role(session, owner_id, "developer")
    await publish(session, CloudEvent(type="publisher.created", subject=str(publisher.id), data={
        "publisher_id": str(publisher.id), "slug": slug, "owner_id": str(owner_id)}))
    return publisher


async def create(session: AsyncSession, *, actor: Principal, slug: str, name: str, description: str,
                 website: str | None, owner_email: str) -> Publisher:
    """An admin creates a publisher for an existing account, which becomes its owner."""
    owner = await accounts.find_by_email(session, owner_email)
    publisher = await _create(session, slug=slug, name=name, description=description, website=website,
                              owner_id=owner.id)
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.publisher_create,
                resource_type="publisher", resource_id=publisher.id,
                after={"slug": slug, "name": name, "owner": owner.email})
    return publisher


async def apply(session: AsyncSession, *, actor: Principal, slug: str, name: str, description: str,
                website: str | None) -> PublisherApplication:
    await repository.serialize_applications(session, user_id=actor.user_id, slug=slug)
    if await repository.pending_application_of(session, actor.user_id):
        raise ApplicationPending("Wait for the decision on your pending application.")
    if await repository.slug_taken(session, slug) or await repository.pending_slug_taken(session, slug):
        raise SlugTaken(f"The slug {slug!r} is taken; choose another.")
    now = utcnow()
    application = await repository.add_application(session, PublisherApplication(
        id=uuid.uuid4(), user_id=actor.user_id, slug=slug, name=name, description=description, website=website,
        status="pending", created_at=now, updated_at=now))
    await publish(session, CloudEvent(type="publisher.application_submitted", subject=str(application.id), data={
        "application_id": str(application.id), "user_id": str(actor.user_id), "slug": slug}))
    await audit(session, actor_id=actor.user_id, actor_email=actor.email,
                action=AuditAction.publisher_application_create, resource_type="publisher_application",
                resource_id=application.id, after={"slug": slug, "name": name})
    return application


async def _pending(session: AsyncSession, application_id: uuid.UUID) -> PublisherApplication:
    application = found_or_raise(await repository.application(session, application_id),
                                 ApplicationNotFound, f"There is no publisher application {application_id}.")
    if application.status != "pending":
        raise ApplicationDecided(f"The application was already {application.status}.")
    return application


async def approve(session: AsyncSession, *, actor: Principal, application_id: uuid.UUID) -> PublisherApplication:
    """Create the publisher with the applicant as owner and grant them the developer role.

    The guarded decision comes first: of concurrent decisions one wins and the others stop
    before creating anything. A slug taken meanwhile undoes the decision with the transaction.
    """
    application = await _pending(session, application_id)
    publisher_id = uuid.uuid4()
    if not await repository.decide_application(session, application.id, status="approved", reason=None,
                                               decided_by=actor.user_id, at=utcnow(), publisher_id=publisher_id):
        raise ApplicationDecided("The application was decided by someone else meanwhile.")
    publisher = await _create(session, slug=application.slug, name=application.name,
                              description=application.description, website=application.website,
                              owner_id=application.user_id, publisher_id=publisher_id)
    await publish(session, CloudEvent(type="publisher.application_approved", subject=str(application.id), data={
        "application_id": str(application.id), "user_id": str(application.user_id),
        "publisher_id": str(publisher.id), "slug": publisher.slug}))
    await audit(session, actor_id=actor.user_id, actor_email=actor.email,
                action=AuditAction.publisher_application_approve, resource_type="publisher_application",
                resource_id=application.id, before={"status": "pending"},
                after={"status": "approved", "publisher_id": publisher.id})
    await session.refresh(application)
    return application


async def reject(session: AsyncSession, *, actor: Principal, application_id: uuid.UUID,
                 reason: str) -> PublisherApplication:
    application = await _pending(session, application_id)
    if not await repository.decide_application(session, application.id, status="rejected", reason=reason,
                                               decided_by=actor.user_id, at=utcnow(), publisher_id=None):
        raise ApplicationDecided("The application was decided by someone else meanwhile.")
    await publish(session, CloudEvent(type="publisher.application_rejected", subject=str(application.id), data={
        "application_id": str(application.id), "user_id": str(application.user_id), "reason": reason}))
    await audit(session, actor_id=actor.user_id, actor_email=actor.email,
                action=AuditAction.publisher_application_reject, resource_type="publisher_application",
                resource_id=application.id, before={"status": "pending"},
                after={"status": "rejected", "reason": reason})
    await session.refresh(application)
    return application


async def applications_of(session: AsyncSession, user_id: uuid.UUID) -> list[PublisherApplication]:
    return await repository.applications_of(session, user_id)


async def count_applications(session: AsyncSession, *, status: str | None) -> int:
    return await repository.count_applications(session, status=status)


async def search_applications(session: AsyncSession, **filters: object) -> list[PublisherApplication]:
    return await repository.search_applications(session, **filters)  # type: ignore[arg-type]


async def search(session: AsyncSession, *, text: str | None, limit: int = 100) -> list[Publisher]:
    """Every publisher matching ``text`` (slug or name), for admins (callers hold ``publisher:verify``)."""
    return await repository.search(session, text=text, limit=limit)


# What a listing's detail shows of its publisher.
SHOWN_ON_LISTINGS = frozenset({"name", "slug", "verified"})


async def update(session: AsyncSession, *, actor: Principal, slug: str, changes: dict[str, object]) -> Publisher:
    publisher = await get(session, slug)
    await require_owner_or_any(session, actor, Permission.publisher_update, publisher)
    if "verified" in changes and not actor.has_any(Permission.publisher_verify):
        raise Forbidden("Only admins grant the verified badge.")
    before = {field: getattr(publisher, field) for field in changes}
    changed = [field for field, value in changes.items() if getattr(publisher, field) != value]
    for field in changed:
        setattr(publisher, field, changes[field])
    if changed:
        publisher.updated_at = utcnow()
        evict = _Listeners.shown_on_listings_changed
        if evict is not None and SHOWN_ON_LISTINGS.intersection(changed):
            await evict(session, publisher.id)
        await publish(session, CloudEvent(type="publisher.updated", subject=str(publisher.id), data={
            "publisher_id": str(publisher.id), "slug": publisher.slug, "changed": changed}))
        action = AuditAction.publisher_verify if changed == ["verified"] else AuditAction.publisher_update
        await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=action,
                    resource_type="publisher", resource_id=publisher.id, before=before,
                    after={field: changes[field] for field in changes})
    return publisher


async def members(session: AsyncSession, publisher: Publisher) -> list[tuple[str, str, str]]:
    return [(str(user.id), user.email, member.role) for member, user in await repository.members(session, publisher.id)]


async def add_member(session: AsyncSession, *, actor: Principal, slug: str, email: str, role: str) -> Publisher:
    publisher = await get(session, slug)
    # Member changes of one publisher run one at a time: two owners leaving at once leave one,
    # and an owner removed meanwhile no longer passes the check below.
    await repository.serialize_member_changes(session, publisher.id)
    await require_owner_or_any(session, actor, Permission.publisher_member_manage, publisher)
    user = await accounts.find_by_email(session, email)
    current = await repository.member_role(session, publisher.id, user.id)
    if current == "owner" and role != "owner" and await repository.owner_count(session, publisher.id) <= 1:
        raise LastOwner("Make someone else an owner first.")
    await repository.upsert_member(session, publisher_id=publisher.id, user_id=user.id, role=role, at=utcnow())
    await access.grant_role(session, user.id, "developer")
    await publish(session, CloudEvent(type="publisher.member_added", subject=str(publisher.id), data={
        "publisher_id": str(publisher.id), "user_id": str(user.id), "role": role}))
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.publisher_member_add,
                resource_type="publisher", resource_id=publisher.id, before={"role": current},
                after={"member": user.email, "role": role})
    return publisher


async def remove_member(session: AsyncSession, *, actor: Principal, slug: str, email: str) -> Publisher:
    publisher = await get(session, slug)
    # Member changes of one publisher run one at a time: two owners leaving at once leave one,
    # and an owner removed meanwhile no longer passes the check below.
    await repository.serialize_member_changes(session, publisher.id)
    await require_owner_or_any(session, actor, Permission.publisher_member_manage, publisher)
    user = await accounts.find_by_email(session, email)
    current = found_or_raise(await repository.member_role(session, publisher.id, user.id),
                             MemberNotFound, f"{email} is not a member of {slug!r}.")
    if current == "owner" and await repository.owner_count(session, publisher.id) <= 1:
        raise LastOwner("Make someone else an owner first.")
    await repository.remove_member(session, publisher.id, user.id)
    await publish(session, CloudEvent(type="publisher.member_removed", subject=str(publisher.id), data={
        "publisher_id": str(publisher.id), "user_id": str(user.id)}))
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.publisher_member_remove,
                resource_type="publisher", resource_id=publisher.id, before={"member": user.email, "role": current})
    return publisher
