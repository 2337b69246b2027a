"""``GET|PATCH /admin/settings``: the runtime store policies (O4)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from mercato.access.dependencies import requires
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.kit.errors import ValidationFailed
from mercato.platform.routing import (
    ReadSession,
    RuntimeDep,
    TransactionalRoute,
    WriteSession,
)
from mercato.policies import service
from mercato.policies.schemas import Policies, PoliciesPatch, SettingsRead

router = APIRouter(route_class=TransactionalRoute, tags=["settings"])

SettingsReader = Annotated[Principal, requires(Permission.settings_read)]
SettingsWriter = Annotated[Principal, requires(Permission.settings_write)]


def _read(settings_view: service.SettingsView, currency: str) -> SettingsRead:
    return SettingsRead(policies=settings_view.policies, defaults=Policies(), currency=currency,
                        updated_at=settings_view.updated_at, updated_by=settings_view.updated_by)


@router.get("/admin/settings", response_model=SettingsRead)
async def read_settings(actor: SettingsReader, session: ReadSession, rt: RuntimeDep) -> SettingsRead:
    """The store policies in force (`policies`), their `defaults`, the store `currency` (money
    policies are in its minor units) and who changed a policy last (`updated_at`,
    `updated_by`; null when none was ever changed)."""
    return _read(await service.view(session), rt.settings.currency)


@router.patch("/admin/settings", response_model=SettingsRead, responses=ValidationFailed.responses())
async def update_settings(body: PoliciesPatch, actor: SettingsWriter,  # type: ignore[valid-type]
                          session: WriteSession, rt: RuntimeDep) -> SettingsRead:
    """Change some policies: send only those to change, e.g. `{"commission_bps": 1500}`.
    The result is validated as a whole (each policy's bounds, and
    `payment_poll_after_seconds` < `payment_expire_seconds`); unknown names, nulls,
    non-integers and values out of bounds answer 422 `validation_failed` with the `errors`,
    and nothing changes. Each changed policy is audited (`settings:update`, before and after)
    and announced as a `config.changed` event; every process of the store applies it within
    a second. Values equal to those in force (or `{}`) change nothing and announce nothing.
    Answers with the settings as `GET` does."""
    changes = body.model_dump(exclude_unset=True)  # type: ignore[attr-defined]
    await service.update(session, actor=actor, changes=changes)
    return _read(await service.view(session), rt.settings.currency)
