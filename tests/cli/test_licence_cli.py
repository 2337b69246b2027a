"""``mercato licence verify`` as a buyer runs it: a real licence from the store's API, checked
by the ``mercato`` command in a subprocess, offline with a public key or against the keys a
running ``mercato serve`` publishes."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from mercato.app.runtime import Runtime
from mercato.kit.keys import StoreKeys
from mercato.library import service as library
from tests.catalog.support import Shop
from tests.cli.servers import MERCATO, clean_env, serving
from tests.support.actors import Actors

V1 = "/api/v1"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MERCATO, "licence", "verify", *args], env=env or clean_env(), capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)


def run_script(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=60,
                          check=False)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stdout == "", result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


async def a_licence(client: httpx.AsyncClient, actors: Actors, runtime: Runtime, tmp_path: Path
                    ) -> tuple[Path, dict[str, Any], str]:
    """A licence of an admin-granted listing, saved to a file; and the store's public key."""
    shop = await Shop.open(client, actors)
    listing = await shop.listing()
    user = await actors.create()
    async with runtime.db.transaction() as session:
        await library.grant(session, user_id=uuid.UUID(user.id), listing_id=uuid.UUID(listing["id"]), source="admin")
    response = await client.get(f"{V1}/library/{listing['id']}/license", headers=user.headers)
    assert response.status_code == 200, response.text
    path = tmp_path / "licence.json"
    path.write_text(response.text)
    keys = (await client.get(f"{V1}/keys")).json()
    (tmp_path / "keys.json").write_text(json.dumps(keys))
    return path, response.json(), keys["keys"][0]["public_key"]


async def test_a_genuine_licence_verifies_offline(client: httpx.AsyncClient, actors: Actors, runtime: Runtime,
                                                  tmp_path: Path) -> None:
    path, document, public_key = await a_licence(client, actors, runtime, tmp_path)
    licence = document["licence"]
    expected = f"valid: {licence['listing_slug']} for {licence['user_id']}, order none"
    for key in (public_key, str(tmp_path / "keys.json")):
        result = run(str(path), "--public-key", key)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == expected


async def test_a_tampered_licence_fails_with_one_line(client: httpx.AsyncClient, actors: Actors, runtime: Runtime,
                                                      tmp_path: Path) -> None:
    path, document, public_key = await a_licence(client, actors, runtime, tmp_path)
    document["licence"]["user_id"] = str(uuid.UUID(int=1))
    path.write_text(json.dumps(document))
    assert "signature does not match" in one_line_error(run(str(path), "--public-key", public_key))


async def test_wrong_keys_and_malformed_files_fail_with_one_line(client: httpx.AsyncClient, actors: Actors,
                                                                 runtime: Runtime, tmp_path: Path) -> None:
    path, document, public_key = await a_licence(client, actors, runtime, tmp_path)
    other_key = StoreKeys.from_seed(os.urandom(32)).public_key.public_key
    assert "not among the given public keys" in one_line_error(run(str(path), "--public-key", other_key))
    assert "not base64" in one_line_error(run(str(path), "--public-key", "not-a-key"))
    assert "--public-key" in one_line_error(run(str(path)))
    # a key labelled with the signer's id but not its key: the id is checked against the key
    forged = {"keys": [{"id": document["key_id"], "algorithm": "ed25519", "public_key": other_key}]}
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    one_line_error(run(str(path), "--public-key", str(tmp_path / "forged.json")))
    for name, content in (("garbage.json", "{not json"), ("list.json", "[]"),
                          ("unsigned.json", json.dumps({"licence": document["licence"]})),
                          ("partial.json", json.dumps({**document, "licence": {"id": "x"}}))):
        (tmp_path / name).write_text(content)
        assert "not" in one_line_error(run(str(tmp_path / name), "--public-key", public_key))
    assert "No such file" in one_line_error(run(str(tmp_path / "absent.json"), "--public-key", public_key))


@pytest.mark.slow
async def test_a_licence_verifies_against_a_running_store(tmp_path: Path, database_url: str) -> None:
    """--server fetches GET /api/v1/keys from the store once; the store signs with the
    configured key, so a document signed with that key verifies, and one signed by
    another store does not."""
    seed = os.urandom(32)
    store_keys = StoreKeys.from_seed(seed)
    payload = {"licence": {"id": str(uuid.uuid4()), "listing_id": str(uuid.uuid4()), "listing_slug": "hello-notes",
                           "user_id": str(uuid.uuid4()), "order_id": str(uuid.uuid4()),
                           "issued_at": "2026-11-22T07:00:00Z", "expires_at": None, "key": "ABCD-1234"}}
    genuine = tmp_path / "genuine.json"
    genuine.write_text(json.dumps(store_keys.sign_document(payload)))
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps(StoreKeys.from_seed(os.urandom(32)).sign_document(payload)))
    env = clean_env(MERCATO_DATA_DIR=str(tmp_path / "store"), MERCATO_DATABASE_URL=database_url,
                    MERCATO_TESTING="1", MERCATO_SIGNING_KEY=base64.b64encode(seed).decode())
    with serving(env=env, log_path=tmp_path / "serve.log") as base:
        result = run(str(genuine), "--server", base)
        assert result.returncode == 0, result.stderr
        licence = payload["licence"]
        assert result.stdout.strip() == (f"valid: hello-notes for {licence['user_id']}, "
                                         f"order {licence['order_id']}")
        one_line_error(run(str(foreign), "--server", base))
    assert "cannot fetch" in one_line_error(run(str(genuine), "--server", base))


async def test_the_python_snippet_of_the_docs_verifies_a_licence(client: httpx.AsyncClient, actors: Actors,
                                                                 runtime: Runtime, tmp_path: Path) -> None:
    """docs/licences.md promises a verifier needing only `cryptography`: run it as written."""
    docs = (Path(__file__).parents[2] / "docs" / "licences.md").read_text()
    snippet = docs.split("```python\n")[-1].split("```")[0]
    assert len(snippet.strip().splitlines()) <= 15
    (tmp_path / "verify.py").write_text(snippet)
    path, document, public_key = await a_licence(client, actors, runtime, tmp_path)
    genuine = run_script(tmp_path / "verify.py", str(path), public_key)
    assert genuine.returncode == 0, genuine.stderr
    assert genuine.stdout.split()[:2] == [document["licence"]["listing_slug"], document["licence"]["user_id"]]
    document["licence"]["listing_slug"] = "something-else"
    path.write_text(json.dumps(document))
    tampered = run_script(tmp_path / "verify.py", str(path), public_key)
    assert tampered.returncode != 0 and "InvalidSignature" in tampered.stderr


def test_a_genuine_but_expired_licence_is_refused(tmp_path: Path) -> None:
    keys = StoreKeys.from_seed(os.urandom(32))
    licence = {"id": "1", "listing_id": "2", "listing_slug": "hello-notes", "user_id": "3", "order_id": None,
               "issued_at": "2020-01-01T00:00:00Z", "expires_at": "2021-01-01T00:00:00Z", "key": None}
    path = tmp_path / "expired.json"
    path.write_text(json.dumps(keys.sign_document({"licence": licence})))
    assert "expired" in one_line_error(run(str(path), "--public-key", keys.public_key.public_key))
