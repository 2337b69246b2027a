"""Request and response models of the sync feeds (the catalog feed's answers are rendered
as bytes from the stored listing JSON; these models describe them in the OpenAPI document)."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import Field, StringConstraints

from mercato.catalog.schemas import ListingRead
from mercato.installs.schemas import InstallationRead, TaskRead
from mercato.kit.schemas import ReadModel, WriteModel
from mercato.library.schemas import EntitlementRead
from mercato.notifications.schemas import NotificationRead
from mercato.orders.schemas import OrderRead

HeldHash = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{1,64}$")]


class CatalogChangeRead(ReadModel):
    id: uuid.UUID = Field(description="The listing's id.")
    hash: str | None = Field(description="Content hash of the listing's public JSON (download and install "
                                         "counts left out); null for a removed listing.")
    deleted: bool = Field(description="A tombstone: the listing left the public catalog (delisted, suspended).")
    listing: ListingRead | None = Field(description="The listing as GET /listings/{id} shows it; null if deleted.")


class CatalogSyncPage(ReadModel):
    changes: list[CatalogChangeRead] = Field(description="Only the latest change of each listing, in feed order.")
    cursor: str = Field(description="Send it back as `cursor` to get what changed after this answer.")
    reset: bool = Field(description="A full snapshot: drop every listing you hold before applying these changes "
                                    "(no cursor, or one older than the retained tombstones).")
    more: bool = Field(description="More changes wait: ask again with the new cursor at once.")


class CatalogDiffRequest(WriteModel):
    hashes: dict[uuid.UUID, HeldHash] = Field(max_length=50_000, description=(
        "The listings you hold, by id, with the `hash` the feed gave you."))


class CatalogDiffRead(ReadModel):
    changed: list[CatalogChangeRead] = Field(description="Listings you hold whose content changed.")
    new: list[CatalogChangeRead] = Field(description="Public listings you do not hold.")
    deleted: list[uuid.UUID] = Field(description="Listings you hold that are no longer public.")
    cursor: str = Field(description="Continue with GET /sync/catalog?cursor= from here.")
    complete: bool = Field(description="False when more listings differ than one answer carries: apply these "
                                       "and diff again.")


class UserSyncPage(ReadModel):
    library: list[EntitlementRead] = Field(description="Entitlements granted or revoked (`active`).")
    orders: list[OrderRead]
    notifications: list[NotificationRead] = Field(description="New ones and ones marked read.")
    installations: list[InstallationRead]
    tasks: list[TaskRead]
    cursor: str = Field(description="Send it back as `cursor` to get what changed after this answer.")
    reset: bool = Field(description="No cursor was sent: this is your whole state (replace what you hold).")
    more: bool = Field(description="A kind had more changes than `limit`: ask again with the new cursor at once.")
