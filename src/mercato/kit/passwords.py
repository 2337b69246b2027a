"""Password policy (QUALITY T5) and Argon2id hashing (T6).

Policy, after NIST SP 800-63B and OWASP ASVS: at least 12 characters, at most 256, no
composition rules, never truncated, refused when it is a known common password (the
list ships in the package: ``data/common-passwords.txt.gz``, from zxcvbn, MIT) or one
with only digits or symbols added at the end, or when it contains the account's email.
"""

from __future__ import annotations

import asyncio
import gzip
import unicodedata
from functools import lru_cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12
MAX_LENGTH = 256


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    raw = resources.files("mercato.data").joinpath("common-passwords.txt.gz").read_bytes()
    lines = gzip.decompress(raw).decode().splitlines()
    return frozenset(line.strip().lower() for line in lines if line and not line.startswith("#"))


def normalise(password: str) -> str:
    """NFKC, so the same password typed on two keyboards hashes the same."""
    return unicodedata.normalize("NFKC", password)


def policy_problems(password: str, *, email: str | None = None) -> list[str]:
    """Why ``password`` is refused; empty when it is acceptable."""
    password = normalise(password)
    problems: list[str] = []
    if len(password) < MIN_LENGTH:
        problems.append(f"must be at least {MIN_LENGTH} characters long")
    if len(password) > MAX_LENGTH:
        problems.append(f"must be at most {MAX_LENGTH} characters long")
    lowered = password.lower()
    stem = lowered.rstrip("0123456789!@#$%^&*.?_-+= ")
    common = common_passwords()
    if lowered in common or (len(stem) >= 4 and stem in common) or len(set(lowered)) <= 2:
        problems.append("is too common; choose a longer phrase of unrelated words")
    if email:
        local = email.split("@", 1)[0].lower()
        if len(local) >= 4 and local in lowered:
            problems.append("must not contain your email address")
    return problems


class PasswordHashing:
    """Argon2id with the parameters of the settings (production: m=19 MiB, t=2, p=1)."""

    def __init__(self, *, memory_cost: int, time_cost: int, parallelism: int) -> None:
        self.hasher = PasswordHasher(memory_cost=memory_cost, time_cost=time_cost, parallelism=parallelism)
        # Verified against when the account does not exist, so an unknown email costs
        # the same time as a wrong password (T7: identical answers).
        self._dummy_hash = self.hasher.hash("mercato-timing-equaliser")

    def hash(self, password: str) -> str:
        return self.hasher.hash(normalise(password))

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            verified = self.hasher.verify(password_hash or self._dummy_hash, normalise(password))
            return verified and password_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    # Argon2 releases the GIL: hashing in a thread keeps the event loop answering.
    async def hash_async(self, password: str) -> str:
        return await asyncio.to_thread(self.hash, password)

    async def verify_async(self, password_hash: str | None, password: str) -> bool:
        return await asyncio.to_thread(self.verify, password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self.hasher.check_needs_rehash(password_hash)
