"""Choosing the artifact store's adapter from the settings (``MERCATO_STORAGE_URL``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from mercato.kit.storage.local import LocalArtifactStore
from mercato.kit.storage.port import ArtifactStore
from mercato.kit.storage.s3 import S3ArtifactStore, S3Credentials

if TYPE_CHECKING:
    from mercato.config import Settings

_S3_OPTIONS = {"endpoint_url", "region", "addressing_style"}


def open_store(settings: Settings) -> ArtifactStore:
    """The artifact store ``settings.storage_url`` names (default: ``data_dir/artifacts``)."""
    url = settings.storage_url
    if not url:
        return LocalArtifactStore(settings.data_dir / "artifacts")
    parts = urlsplit(url)
    if parts.scheme == "file":
        path = unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not path.startswith("/"):
            raise ValueError(f"MERCATO_STORAGE_URL {url!r}: a file URL is file:///absolute/path")
        return LocalArtifactStore(Path(path))
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"MERCATO_STORAGE_URL {url!r}: an S3 URL is s3://bucket/prefix?endpoint_url=...")
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        unknown = sorted(set(query) - _S3_OPTIONS)
        if unknown:
            raise ValueError(f"MERCATO_STORAGE_URL: unknown option(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(_S3_OPTIONS))}")
        if query.get("addressing_style", "auto") not in ("auto", "path", "virtual"):
            raise ValueError("MERCATO_STORAGE_URL: addressing_style is auto, path or virtual")
        key_id, secret = settings.s3_access_key_id, settings.s3_secret_access_key
        if bool(key_id) != bool(secret):
            raise ValueError("Set both MERCATO_S3_ACCESS_KEY_ID and MERCATO_S3_SECRET_ACCESS_KEY, or neither "
                             "(then the standard AWS variables and profiles are used).")
        credentials = S3Credentials(key_id, secret) if key_id and secret else None
        return S3ArtifactStore(parts.netloc, unquote(parts.path), endpoint_url=query.get("endpoint_url"),
                               region=query.get("region"), credentials=credentials,
                               addressing_style=query.get("addressing_style"))
    raise ValueError(f"MERCATO_STORAGE_URL {url!r}: use file:///path or s3://bucket/prefix")
