"""Checking the store's Ed25519 signature over a downloaded artifact with its published keys."""

from __future__ import annotations

from mercato.client.errors import SignatureInvalid
from mercato.client.schemas import DownloadResult, PublicKey
from mercato.kit import keys as signing


def verify_download(result: DownloadResult, keys: list[PublicKey]) -> PublicKey:
    """Check the store's signature over the artifact's SHA-256 with the store's published keys.

    Returns the key that verified it; raises :class:`SignatureInvalid` otherwise.
    """
    if not result.signature:
        raise SignatureInvalid("signature_missing: the store sent no X-Signature-Ed25519 header; "
                               "the download cannot be trusted")
    candidates = [k for k in keys if k.id == result.key_id] if result.key_id else list(keys)
    if not candidates:
        known = ", ".join(k.id for k in keys) or "none"
        raise SignatureInvalid(f"signature_unknown_key: signed with key {result.key_id}, "
                               f"which the store does not publish (published: {known})")
    message = signing.artifact_message(result.sha256)
    for key in candidates:
        if key.algorithm.lower() != "ed25519":
            continue
        try:
            ok = signing.verify(key.public_key, message, result.signature)
        except Exception:  # a malformed key or signature is a failed verification
            ok = False
        if ok is not False:
            return key
    raise SignatureInvalid(f"signature_invalid: the Ed25519 signature of {result.path.name} does not verify "
                           f"with key {result.key_id or 'of the store'}")
