"""The store's Ed25519 keys: loading and generating them, signing, and offline verification."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import sys
import threading
from dataclasses import asdict
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mercato.config import Settings
from mercato.kit.keys import (
    KEY_FILE,
    PublicKey,
    SigningKeyInvalid,
    StoreKeys,
    artifact_message,
    verify,
    verify_document,
)

DIGEST = hashlib.sha256(b"an archive").hexdigest()


def settings(data_dir: Path, signing_key: str | None = None) -> Settings:
    return Settings(data_dir=data_dir, signing_key=signing_key)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.fixture
def keys() -> StoreKeys:
    return StoreKeys.from_seed(os.urandom(32))


# --- loading -----------------------------------------------------------------------------

def test_a_generated_key_is_kept_private_in_the_data_dir_and_reused(tmp_path: Path) -> None:
    first = StoreKeys.from_settings(settings(tmp_path))
    again = StoreKeys.from_settings(settings(tmp_path))

    key_file = tmp_path / KEY_FILE
    assert again.key_id == first.key_id
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(base64.b64decode(key_file.read_text().strip(), validate=True)) == 32
    assert [path.name for path in tmp_path.iterdir()] == [KEY_FILE]  # no temp file left


def test_concurrent_first_loads_agree_on_one_key(tmp_path: Path) -> None:
    start = threading.Barrier(12)
    ids: list[str] = []

    def load() -> None:
        start.wait()
        ids.append(StoreKeys.from_settings(settings(tmp_path)).key_id)

    threads = [threading.Thread(target=load) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(ids) == 12 and len(set(ids)) == 1


def test_processes_starting_at_once_agree_on_one_key(tmp_path: Path) -> None:
    script = ("import sys; from pathlib import Path; from mercato.config import Settings; "
              "from mercato.kit.keys import StoreKeys; "
              "print(StoreKeys.from_settings(Settings(data_dir=Path(sys.argv[1]), signing_key=None)).key_id)")
    processes = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "shared")],
                                  stdout=subprocess.PIPE, text=True) for _ in range(4)]
    ids = {process.communicate(timeout=60)[0].strip() for process in processes}

    assert len(ids) == 1 and ids != {""}
    assert StoreKeys.from_settings(settings(tmp_path / "shared")).key_id in ids


def test_the_configured_key_is_used_and_nothing_is_generated(tmp_path: Path) -> None:
    seed = os.urandom(32)
    raw_public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    keys = StoreKeys.from_settings(settings(tmp_path, signing_key=b64(seed)))

    assert keys.public_keys() == [PublicKey(id=hashlib.sha256(raw_public).hexdigest()[:16],
                                            algorithm="ed25519", public_key=b64(raw_public))]
    assert keys.key_id == keys.public_keys()[0].id
    assert not (tmp_path / KEY_FILE).exists()


@pytest.mark.parametrize("configured", ["not base64 at all!", b64(bytes(range(31))), b64(bytes(range(33))),
                                        b64(bytes(range(32)))[:-2]])
def test_a_bad_configured_key_is_a_clear_error(tmp_path: Path, configured: str) -> None:
    with pytest.raises(SigningKeyInvalid, match="MERCATO_SIGNING_KEY must be base64 of a 32-byte") as raised:
        StoreKeys.from_settings(settings(tmp_path, signing_key=configured))

    assert configured not in str(raised.value)


def test_a_damaged_key_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_text("truncated")

    with pytest.raises(SigningKeyInvalid, match="does not hold base64 of a 32-byte"):
        StoreKeys.from_settings(settings(tmp_path))


def test_the_key_does_not_show_in_its_repr(tmp_path: Path) -> None:
    seed = b64(os.urandom(32))

    assert seed not in repr(StoreKeys.from_settings(settings(tmp_path, signing_key=seed)))


# --- signatures --------------------------------------------------------------------------

def test_a_download_signature_verifies_offline(keys: StoreKeys) -> None:
    signature = keys.sign(artifact_message(DIGEST))

    assert artifact_message(DIGEST) == b"mercato-artifact-v1:sha256:" + DIGEST.encode()
    assert len(base64.b64decode(signature)) == 64
    assert verify(keys.public_keys()[0].public_key, artifact_message(DIGEST), signature)
    assert keys.sign_artifact(DIGEST) == signature  # Ed25519 is deterministic


def test_a_tampered_message_signature_or_key_does_not_verify(keys: StoreKeys) -> None:
    public = keys.public_keys()[0].public_key
    message = artifact_message(DIGEST)
    signature = keys.sign(message)
    flipped = bytearray(base64.b64decode(signature))
    flipped[10] ^= 1
    other = StoreKeys.from_seed(os.urandom(32)).public_keys()[0].public_key

    assert not verify(public, artifact_message(hashlib.sha256(b"another").hexdigest()), signature)
    assert not verify(public, message + b"x", signature)
    assert not verify(public, message, b64(bytes(flipped)))
    assert not verify(other, message, signature)


@pytest.mark.parametrize(("public", "signature"), [
    ("not base64!", None), (b64(b"short"), None), (None, "not base64!"), (None, b64(b"short")),
    (None, ""), ("", None), (123, None), (None, 456),
])
def test_bad_input_does_not_verify_and_does_not_raise(keys: StoreKeys, public: object, signature: object) -> None:
    message = artifact_message(DIGEST)
    public = keys.public_keys()[0].public_key if public is None else public
    signature = keys.sign(message) if signature is None else signature

    assert verify(public, message, signature) is False  # type: ignore[arg-type]


def test_retired_keys_stay_published_after_the_current_one() -> None:
    old = StoreKeys.from_seed(os.urandom(32))

    current = StoreKeys.from_seed(os.urandom(32), retired=[old.public_key])

    assert [key.id for key in current.public_keys()] == [current.key_id, old.key_id]


# --- signed documents --------------------------------------------------------------------

LICENCE = {"licence_id": "lic_1", "listing": "photo-editor", "user_id": "u_42", "seats": 3,
           "features": ["pro", "export"], "holder": "Zoë Ünal", "expires_at": None}


def test_a_signed_document_round_trips_through_json(keys: StoreKeys) -> None:
    document = keys.sign_document(LICENCE)
    published = [asdict(key) for key in keys.public_keys()]  # as the API serves them

    received = json.loads(json.dumps(document, indent=2))  # any formatting, any key order

    assert {**LICENCE, "key_id": keys.key_id, "algorithm": "ed25519"}.items() <= document.items()
    assert verify_document(received, published)
    assert verify_document(document, keys.public_keys())


@pytest.mark.parametrize("tamper", [
    lambda doc: doc.update(seats=30),
    lambda doc: doc.update(extra="field"),
    lambda doc: doc.pop("expires_at"),
    lambda doc: doc.update(features=["export", "pro"]),
    lambda doc: doc.update(algorithm="rsa"),
    lambda doc: doc.update(key_id="0" * 16),
    lambda doc: doc.update(signature=doc["signature"][::-1]),
    lambda doc: doc.pop("signature"),
])
def test_a_changed_document_does_not_verify(keys: StoreKeys, tamper: object) -> None:
    document = keys.sign_document(LICENCE)

    tamper(document)  # type: ignore[operator]

    assert not verify_document(document, keys.public_keys())


def test_a_document_signed_by_an_unknown_key_does_not_verify(keys: StoreKeys) -> None:
    stranger = StoreKeys.from_seed(os.urandom(32))
    document = stranger.sign_document(LICENCE)
    mislabelled = PublicKey(id=stranger.key_id, algorithm="ed25519", public_key=keys.public_key.public_key)

    assert not verify_document(document, keys.public_keys())
    assert not verify_document(keys.sign_document(LICENCE), [
        PublicKey(id=keys.key_id, algorithm="ed25519", public_key=stranger.public_key.public_key)])
    assert not verify_document(document, [mislabelled])
    assert not verify_document("not a document", keys.public_keys())  # type: ignore[arg-type]


def test_a_payload_cannot_carry_the_signature_fields(keys: StoreKeys) -> None:
    with pytest.raises(ValueError, match="signature"):
        keys.sign_document({"signature": "forged"})
