"""Instance tokens (I1): the credential of ``mercato agent`` on one instance.

A token is ``mci_`` and 256 random bits; only its SHA-256 is stored, and it is shown
once, when the instance is registered. It authenticates the agent routes
(``/agent/…``, policy ``agent:connect``) and nothing else: the principal it yields holds
that one permission, for the instance's owner.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.permissions import Condition, Permission
from mercato.access.principal import INSTANCE_KIND, Principal, instance_id_of  # noqa: F401 (installs' names)
from mercato.kit.security import new_secret, secret_digest
from mercato.models import Instance, User

INSTANCE_TOKEN_PREFIX = "mci_"


def new_instance_token() -> tuple[str, str]:
    """A fresh token and the digest to store."""
    token = new_secret(INSTANCE_TOKEN_PREFIX)
    return token, secret_digest(token)


async def identify_instance(session: AsyncSession, credential: str) -> Principal | None:
    """The agent behind an instance token, or None when the token is unknown or revoked
    (or its owner disabled)."""
    if not credential.startswith(INSTANCE_TOKEN_PREFIX):
        return None
    row = (await session.execute(
        select(Instance.id, Instance.revoked_at, User.id, User.email, User.is_active)
        .join(User, User.id == Instance.owner_id)
        .where(Instance.token_hash == secret_digest(credential)))).first()
    if row is None:
        return None
    instance_id, revoked_at, user_id, email, active = row
    if revoked_at is not None or not active:
        return None
    return Principal(user_id=user_id, email=email, roles=frozenset(),
                     grants={Permission.agent_connect.value: Condition.own}, kind=INSTANCE_KIND,
                     extra={"instance_id": str(instance_id)})
