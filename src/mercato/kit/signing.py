"""Standard Webhooks signing (https://www.standardwebhooks.com), for webhooks we send and
the ones we receive.

A secret is ``whsec_`` + base64 of random bytes; the HMAC key is the decoded bytes. A message
is signed as ``v1,`` + base64(HMAC-SHA256(key, f"{msg_id}.{timestamp}.{body}")), and the
``webhook-signature`` header lists one such signature per secret in use, separated by
spaces (two while a secret is being rotated).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 5 * 60

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"


class InvalidSignature(ValueError):
    """The message is not signed by any of the given secrets, or its timestamp is too far off."""


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_…`` secret (the prefix is optional, as the standard allows)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a webhook secret is whsec_ followed by base64") from exc


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One signature, ``v1,<base64>``."""
    message = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), message, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signature_header(secrets_in_use: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> str:
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets_in_use)


def headers(secrets_in_use: Iterable[str], msg_id: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers for a message sent now (or at ``timestamp``)."""
    at = int(time.time()) if timestamp is None else timestamp
    return {HEADER_ID: msg_id, HEADER_TIMESTAMP: str(at),
            HEADER_SIGNATURE: signature_header(secrets_in_use, msg_id, at, body)}


def verify(secrets_in_use: Iterable[str], received: Mapping[str, str], body: bytes, *,
           tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: int | None = None) -> None:
    """Raise :class:`InvalidSignature` unless one signature of ``received`` matches one secret
    and the timestamp is within ``tolerance`` seconds of now (replays of old messages fail)."""
    lowered = {key.lower(): value for key, value in received.items()}
    msg_id, raw_timestamp, header = (lowered.get(HEADER_ID), lowered.get(HEADER_TIMESTAMP),
                                     lowered.get(HEADER_SIGNATURE))
    if not msg_id or not raw_timestamp or not header:
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(raw_timestamp)
    except ValueError as exc:
        raise InvalidSignature("webhook-timestamp is not an integer") from exc
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance:
        raise InvalidSignature("webhook-timestamp is too far from now")
    offered = [part for part in header.split(" ") if part]
    for secret in secrets_in_use:
        expected = sign(secret, msg_id, timestamp, body)
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return
    raise InvalidSignature("no signature matches")
