"""Real package archives (the demo catalog's own builder) and a store key to sign them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from mercato.agent.files import Artifact
from mercato.client.schemas import PublicKey
from mercato.demo.catalog import _listings, _write_package
from mercato.kit.keys import StoreKeys
from mercato.packages.archive import inspect_archive
from mercato.packages.scaffold import build_package

KEYS = StoreKeys.from_seed(bytes(range(32)))
PUBLIC_KEYS = [PublicKey(id=KEYS.key_id, algorithm="ed25519", public_key=KEYS.public_key.public_key)]


def demo_archive(workdir: Path, slug: str = "hello-notes", version: str = "1.0.0", *, fmt: str = "tar.gz") -> Path:
    """The archive ``mercato demo`` publishes for ``slug`` at ``version`` (tar.gz or zip)."""
    item = next(listing for listing in _listings() if listing.slug == slug)
    scratch = workdir / f"build-{slug}-{version}-{fmt.replace('.', '')}"
    archive = _write_package(scratch, item, version)
    if fmt == "zip":
        archive = build_package(scratch / f"{slug}-{version}", output_dir=scratch / "zip", fmt="zip")
    return archive


def artifact(path: Path) -> Artifact:
    return Artifact(path=path, inspected=inspect_archive(path))


@dataclass
class Ids:
    installation_id: str
    listing_id: str


def new_ids() -> Ids:
    return Ids(installation_id=str(uuid.uuid4()), listing_id=str(uuid.uuid4()))


def licence_for(listing_id: str, *, expires_at: str | None = None, keys: StoreKeys = KEYS) -> dict[str, object]:
    return keys.sign_document({"licence": {
        "id": str(uuid.uuid4()), "listing_id": listing_id, "listing_slug": "hello-notes",
        "user_id": str(uuid.uuid4()), "order_id": None, "issued_at": "2026-11-22T10:00:00Z",
        "expires_at": expires_at, "key": None}})
