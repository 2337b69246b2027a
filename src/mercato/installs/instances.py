"""Instances (I1): registering a device or server, its token, what its agent reports, deleting it.

Also :class:`Scope`, whose rows a caller sees, for instances and everything on them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.principal import Principal
from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.installs import repository
from mercato.installs.auth import new_instance_token
from mercato.installs.errors import InstanceNotFound
from mercato.installs.transitions import cancel_task
from mercato.kit.clock import utcnow
from mercato.models import Instance


@dataclass(frozen=True)
class Scope:
    """Whose rows the caller sees: one owner's, or (``owner_id`` None) everyone's."""

    owner_id: uuid.UUID | None

    @classmethod
    def of(cls, actor: Principal, *, everything: bool) -> Scope:
        return cls(None if everything else actor.user_id)


async def register_instance(session: AsyncSession, *, actor: Principal, name: str) -> tuple[Instance, str]:
    """A new instance and its token (returned this once; only its hash is kept)."""
    token, digest = new_instance_token()
    now = utcnow()
    instance = Instance(id=uuid.uuid4(), owner_id=actor.user_id, name=name, token_hash=digest,
                        token_hint=token[:12], resources={}, inventory=[], created_at=now, updated_at=now)
    repository.add(session, instance)
    await session.flush()
    await publish(session, CloudEvent(type="instance.registered", subject=str(instance.id), data={
        "instance_id": str(instance.id), "user_id": str(actor.user_id), "name": name}))
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.instance_register,
                resource_type="instance", resource_id=instance.id, after={"name": name})
    return instance, token


async def get_instance(session: AsyncSession, *, scope: Scope, instance_id: uuid.UUID) -> Instance:
    instance = await repository.instance(session, instance_id, owner_id=scope.owner_id)
    if instance is None:
        raise InstanceNotFound(f"You have no instance {instance_id}.")
    return instance


async def instances(session: AsyncSession, *, scope: Scope, after: tuple[datetime, uuid.UUID] | None,
                    limit: int) -> list[Instance]:
    return await repository.instances(session, owner_id=scope.owner_id, after=after, limit=limit)


async def delete_instance(session: AsyncSession, *, actor: Principal, instance_id: uuid.UUID) -> None:
    """Revoke the token at once; open tasks of the instance are canceled (nobody would run them)."""
    instance = await get_instance(session, scope=Scope(actor.user_id), instance_id=instance_id)
    for task in await repository.open_tasks_of_instance(session, instance.id):
        await cancel_task(session, task, message="The instance was deleted.")
    if not await repository.revoke_instance(session, instance.id, at=utcnow()):
        raise InstanceNotFound(f"You have no instance {instance_id}.")
    await publish(session, CloudEvent(type="instance.deleted", subject=str(instance.id), data={
        "instance_id": str(instance.id), "user_id": str(instance.owner_id), "name": instance.name}))
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.instance_delete,
                resource_type="instance", resource_id=instance.id, before={"name": instance.name})


async def heartbeat(session: AsyncSession, *, instance_id: uuid.UUID, inventory: list[dict[str, Any]],
                    resources: dict[str, Any], platform: str | None, host_version: str | None) -> int:
    """Store what the agent reports (kept as reported: status correction compares it);
    returns how many tasks wait for the instance."""
    values: dict[str, Any] = {"inventory": inventory, "resources": resources}
    if platform is not None:
        values["platform"] = platform
    if host_version is not None:
        values["host_version"] = host_version
    await repository.record_heartbeat(session, instance_id, at=utcnow(), values=values)
    return await repository.count_queued(session, instance_id)
