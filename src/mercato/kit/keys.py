"""The store's Ed25519 signing keys: download signatures and signed JSON documents (licences).

One key signs; its public half, and the public halves of retired keys, are published so
that clients (the CLI, the install agent) verify offline with :func:`verify` and
:func:`verify_document`. Every process of one store must load the same key: configure
``MERCATO_SIGNING_KEY`` (base64 of a 32-byte Ed25519 seed), or let the first process
generate ``data_dir/signing-ed25519.key`` (only safe when all processes share the data dir).

What is signed:

- a download: :func:`artifact_message` of the archive's SHA-256,
  ``b"mercato-artifact-v1:sha256:" + hex``;
- a document: ``b"mercato-document-v1:"`` + the canonical JSON (sorted keys, no spaces,
  UTF-8) of the document without its ``signature`` (so ``key_id`` and ``algorithm`` are
  signed too). Keep documents to strings, integers, booleans, null, lists and objects:
  floats serialise differently across languages.

Signatures and public keys are standard base64 (with padding).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

if TYPE_CHECKING:
    from mercato.config import Settings

ALGORITHM = "ed25519"
KEY_FILE = "signing-ed25519.key"
ARTIFACT_PREFIX = b"mercato-artifact-v1:sha256:"
DOCUMENT_PREFIX = b"mercato-document-v1:"
SIGNATURE_FIELDS = ("key_id", "algorithm", "signature")
_SEED_BYTES = 32


class SigningKeyInvalid(ValueError):
    """The configured (or stored) signing key cannot be used; the message says why, never the key."""


@dataclass(frozen=True)
class PublicKey:
    id: str  # first 16 hex characters of sha256(raw public key)
    algorithm: str  # "ed25519"
    public_key: str  # base64 of the raw 32 bytes

    @classmethod
    def from_raw(cls, raw: bytes) -> PublicKey:
        return cls(id=public_key_id(raw), algorithm=ALGORITHM, public_key=_b64(raw))

    @classmethod
    def from_base64(cls, public_key: str) -> PublicKey:
        raw = _unb64(public_key)
        if raw is None or len(raw) != 32:
            raise SigningKeyInvalid("an Ed25519 public key is base64 of 32 bytes")
        return cls.from_raw(raw)


def public_key_id(raw_public_key: bytes) -> str:
    return hashlib.sha256(raw_public_key).hexdigest()[:16]


def artifact_message(sha256_hex: str) -> bytes:
    """What a download signature signs: ``b"mercato-artifact-v1:sha256:" + hex``."""
    return ARTIFACT_PREFIX + sha256_hex.encode("ascii")


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8 (not ASCII-escaped); NaN and infinities refused."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def document_message(document: Mapping[str, Any]) -> bytes:
    """The bytes a document's signature covers: everything but ``signature``, canonical."""
    unsigned = {name: value for name, value in document.items() if name != "signature"}
    return DOCUMENT_PREFIX + canonical_json(unsigned)


class StoreKeys:
    """The signing key of this store and the public keys it publishes."""

    def __init__(self, private_key: Ed25519PrivateKey, *, retired: Sequence[PublicKey] = ()) -> None:
        self._private = private_key
        self._public = PublicKey.from_raw(private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
        self._retired = tuple(key for key in retired if key.id != self._public.id)

    @classmethod
    def from_seed(cls, seed: bytes, *, retired: Sequence[PublicKey] = ()) -> StoreKeys:
        if len(seed) != _SEED_BYTES:
            raise SigningKeyInvalid(f"an Ed25519 seed is {_SEED_BYTES} bytes, not {len(seed)}")
        return cls(Ed25519PrivateKey.from_private_bytes(seed), retired=retired)

    @classmethod
    def from_settings(cls, settings: Settings) -> StoreKeys:
        """``MERCATO_SIGNING_KEY``, or the key generated once into the data dir.

        Public keys listed in ``signing_retired_public_keys`` (when the settings have it)
        stay published, so that documents signed before a rotation still verify."""
        retired = [PublicKey.from_base64(key) for key in getattr(settings, "signing_retired_public_keys", None) or ()]
        if settings.signing_key:
            seed = _unb64(settings.signing_key.strip())
            if seed is None or len(seed) != _SEED_BYTES:
                raise SigningKeyInvalid(
                    "MERCATO_SIGNING_KEY must be base64 of a 32-byte Ed25519 seed; generate one with "
                    "`python -c \"import base64, os; print(base64.b64encode(os.urandom(32)).decode())\"`")
            return cls.from_seed(seed, retired=retired)
        return cls.from_seed(_load_or_create_seed(Path(settings.data_dir) / KEY_FILE), retired=retired)

    @staticmethod
    def generate_seed() -> str:
        """A new key, as ``MERCATO_SIGNING_KEY`` takes it."""
        return _b64(os.urandom(_SEED_BYTES))

    @property
    def key_id(self) -> str:
        return self._public.id

    @property
    def public_key(self) -> PublicKey:
        return self._public

    def sign(self, message: bytes) -> str:
        """The base64 Ed25519 signature of ``message``."""
        return _b64(self._private.sign(message))

    def sign_artifact(self, sha256_hex: str) -> str:
        return self.sign(artifact_message(sha256_hex))

    def public_keys(self) -> list[PublicKey]:
        """The current key first, then retired ones still accepted by verifiers."""
        return [self._public, *self._retired]

    def sign_document(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """``payload`` plus ``key_id``, ``algorithm`` and ``signature``."""
        clash = sorted(set(payload) & set(SIGNATURE_FIELDS))
        if clash:
            raise ValueError(f"a signed document's payload cannot use the field(s) {', '.join(clash)}")
        document = {**payload, "key_id": self.key_id, "algorithm": ALGORITHM}
        document["signature"] = self.sign(document_message(document))
        return document

    def __repr__(self) -> str:  # never the private key
        return f"StoreKeys(key_id={self.key_id!r})"


def verify(public_key_b64: str, message: bytes, signature_b64: str) -> bool:
    """Whether ``signature_b64`` is ``public_key_b64``'s signature of ``message``; False on any bad input."""
    raw_key, signature = _unb64(public_key_b64), _unb64(signature_b64)
    if raw_key is None or signature is None or len(raw_key) != 32 or len(signature) != 64:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(raw_key).verify(signature, message)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def verify_document(document: Mapping[str, Any], public_keys: Iterable[PublicKey | Mapping[str, Any]]) -> bool:
    """Whether ``document`` was signed by one of ``public_keys`` (as :class:`PublicKey`, or the
    ``{"id", "algorithm", "public_key"}`` objects the API publishes) and not changed since."""
    if not isinstance(document, Mapping):
        return False
    key_id, algorithm, signature = (document.get(name) for name in SIGNATURE_FIELDS)
    if algorithm != ALGORITHM or not isinstance(key_id, str) or not isinstance(signature, str):
        return False
    try:
        message = document_message(document)
    except (TypeError, ValueError):
        return False
    for key in public_keys:
        fields = (key.id, key.algorithm, key.public_key) if isinstance(key, PublicKey) else (
            key.get("id"), key.get("algorithm"), key.get("public_key"))
        if fields[0] == key_id and fields[1] == ALGORITHM and isinstance(fields[2], str):
            raw = _unb64(fields[2])
            # the id must be that of the key, so a mislabelled key cannot stand in for another
            if raw is not None and public_key_id(raw) == key_id and verify(fields[2], message, signature):
                return True
    return False


# --- the generated key file --------------------------------------------------------------

def _load_or_create_seed(path: Path) -> bytes:
    """The seed kept at ``path``, created (mode 0600) if absent.

    Two processes starting at once agree: each writes a complete candidate to a temp file
    and hard-links it into place, which fails if the file exists (like ``O_EXCL``, but a
    reader never sees a half-written file); the loser reads the winner's key.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".signing-", suffix=".tmp")  # mode 0600
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(StoreKeys.generate_seed() + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temp_name, path)
            except FileExistsError:
                pass  # another process won: use its key
        finally:
            os.unlink(temp_name)
    seed = _unb64(path.read_text().strip())
    if seed is None or len(seed) != _SEED_BYTES:
        raise SigningKeyInvalid(f"{path} does not hold base64 of a 32-byte Ed25519 seed; "
                                "restore it from a backup, or delete it to generate a new key")
    return seed


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: object) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None

