"""Tokens: signed JWT access tokens and opaque random secrets stored only as hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt

from mercato.kit.clock import utcnow

JWT_ALGORITHM = "HS256"
ACCESS_TOKEN_TYPE = "access"
# 32 random bytes = 256 bits (T9 asks for at least 128).
SECRET_BYTES = 32
API_TOKEN_PREFIX = "mct_"
REFRESH_TOKEN_PREFIX = "mcr_"


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(SECRET_BYTES)


def secret_digest(secret: str) -> str:
    """SHA-256 of a high-entropy secret: enough (no salt or KDF needed) for random tokens."""
    return hashlib.sha256(secret.encode()).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    token_version: int
    expires_at: datetime
    session_id: uuid.UUID | None = None  # the sign-in (refresh family) the token belongs to


class TokenSigner:
    def __init__(self, *, key: str, issuer: str, audience: str, access_lifetime: timedelta) -> None:
        self.key = key
        self.issuer = issuer
        self.audience = audience
        self.access_lifetime = access_lifetime

    def issue_access(self, *, user_id: uuid.UUID, token_version: int,
                     session_id: uuid.UUID | None = None) -> tuple[str, int]:
        now = utcnow()
        claims: dict[str, Any] = {
            "sub": str(user_id),
            "iss": self.issuer,
            "aud": self.audience,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int((now + self.access_lifetime).timestamp()),
            "jti": uuid.uuid4().hex,
            "typ": ACCESS_TOKEN_TYPE,
            "ver": token_version,
        }
        if session_id is not None:
            claims["sid"] = str(session_id)
        token = jwt.encode(claims, self.key, algorithm=JWT_ALGORITHM)
        return token, int(self.access_lifetime.total_seconds())

    def read_access(self, token: str) -> AccessClaims | None:
        """The claims of a valid access token, or None (bad signature, alg, expiry, aud, iss, type)."""
        try:
            claims = jwt.decode(
                token, self.key, algorithms=[JWT_ALGORITHM], audience=self.audience, issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "iss", "aud", "typ", "ver"]},
            )
            # ``type(...) is int``: a bool is an int to isinstance, and ``true`` would pass for version 1.
            if claims.get("typ") != ACCESS_TOKEN_TYPE or type(claims.get("ver")) is not int:
                return None
            sid = claims.get("sid")
            if sid is not None and not isinstance(sid, str):
                return None
            return AccessClaims(user_id=uuid.UUID(claims["sub"]), token_version=claims["ver"],
                                expires_at=datetime.fromtimestamp(claims["exp"]).astimezone(),
                                session_id=uuid.UUID(sid) if sid is not None else None)
        except (jwt.PyJWTError, ValueError, TypeError):
            return None
