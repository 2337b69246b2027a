"""A typed client for the Mercato HTTP API (used by the publisher CLI and the install agent)."""

from mercato.client.http import (
    ApiError,
    Checks,
    ChecksumMismatch,
    ClientError,
    CreatedToken,
    DownloadResult,
    Finding,
    Listing,
    MercatoClient,
    PublicKey,
    PublisherRef,
    SignatureInvalid,
    TokenPair,
    User,
    Version,
    file_sha256,
    normalize_server,
    verify_download,
)

__all__ = [
    "ApiError", "Checks", "ChecksumMismatch", "ClientError", "CreatedToken", "DownloadResult", "Finding",
    "Listing", "MercatoClient", "PublicKey", "PublisherRef", "SignatureInvalid", "TokenPair", "User", "Version",
    "file_sha256", "normalize_server", "verify_download",
]
