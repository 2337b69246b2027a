"""A typed client for the Mercato HTTP API (used by the publisher CLI and the install agent)."""

from mercato.client.errors import ApiError, ChecksumMismatch, ClientError, SignatureInvalid
from mercato.client.http import MercatoClient, normalize_server
from mercato.client.schemas import (
    Checks,
    CreatedToken,
    DownloadResult,
    Finding,
    Listing,
    PublicKey,
    PublisherRef,
    TokenPair,
    User,
    Version,
)
from mercato.client.signatures import verify_download
from mercato.client.transfer import file_sha256

__all__ = [
    "ApiError", "Checks", "ChecksumMismatch", "ClientError", "CreatedToken", "DownloadResult", "Finding",
    "Listing", "MercatoClient", "PublicKey", "PublisherRef", "SignatureInvalid", "TokenPair", "User", "Version",
    "file_sha256", "normalize_server", "verify_download",
]
