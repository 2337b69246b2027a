"""Password policy and hashing (QUALITY.md (e): T5, T6).

Minimum 12 characters, maximum 256 (≥ 128), no composition rules, a common-password
list, NFKC normalisation and no truncation; Argon2id at m = 19 MiB, t = 2 in production.
"""

from __future__ import annotations

import unicodedata
import uuid
from typing import Any

import httpx
import pytest

from mercato.config import Settings
from mercato.kit.passwords import PasswordHashing

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"


def new_email() -> str:
    return f"pw-{uuid.uuid4().hex[:8]}@example.org"


async def register(client: httpx.AsyncClient, password: str, email: str | None = None) -> httpx.Response:
    return await client.post(REGISTER, json={"email": email or new_email(), "password": password})


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post(LOGIN, json={"email": email, "password": password})


def assert_weak(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == "weak_password", body
    assert body["errors"] and body["errors"][0]["loc"] == ["body", "password"]
    return body


def phrase(length: int) -> str:
    """A varied, uncommon passphrase of exactly ``length`` characters."""
    words = "amber tulip orbit canyon velvet mosaic harbor lantern quartz meadow falcon ember "
    text = (words * (length // len(words) + 1))[:length]
    assert len(text) == length
    return text


# --- T5: length ---------------------------------------------------------------------------------

async def test_password_shorter_than_12_characters_is_refused(client) -> None:
    body = assert_weak(await register(client, "violet-kaya"))  # 11 characters
    assert "12" in body["detail"]


async def test_password_of_12_characters_is_accepted(client) -> None:
    response = await register(client, "violet-kayak")
    assert response.status_code == 201, response.text


async def test_password_of_256_characters_is_accepted_and_signs_in(client) -> None:
    email, password = new_email(), phrase(256)
    assert (await register(client, password, email)).status_code == 201
    assert (await login(client, email, password)).status_code == 200


async def test_password_of_1000_characters_is_refused(client) -> None:
    assert_weak(await register(client, phrase(1000)))


async def test_password_longer_than_the_body_field_allows_gets_a_problem_not_a_500(client) -> None:
    response = await register(client, phrase(5000))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_long_passwords_are_not_truncated(client) -> None:
    """bcrypt would ignore everything after byte 72; two passwords sharing those must differ."""
    email, password = new_email(), phrase(100)
    assert (await register(client, password, email)).status_code == 201
    same_prefix = password[:72] + "x" * 28
    assert same_prefix != password and len(same_prefix) == 100
    assert (await login(client, email, same_prefix)).status_code == 401
    assert (await login(client, email, password[:72])).status_code == 401
    assert (await login(client, email, password)).status_code == 200


# --- T5: content --------------------------------------------------------------------------------

@pytest.mark.parametrize("password", [
    "password1234", "qwertyuiop123", "PASSWORD1234",  # on the list
    "iloveyou2024!",  # a listed password with digits and symbols added
    "q1w2e3r4t5y6", "123456789123",  # listed as is, and only a listed stem would not catch them
])
async def test_common_password_is_refused(client, password) -> None:
    body = assert_weak(await register(client, password))
    assert "common" in body["detail"]


async def test_common_password_written_in_fullwidth_characters_is_refused(client) -> None:
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in "password1234")
    assert unicodedata.normalize("NFKC", fullwidth) == "password1234"
    assert_weak(await register(client, fullwidth))


async def test_password_with_a_single_repeated_character_is_refused(client) -> None:
    assert_weak(await register(client, "a" * 20))


async def test_password_containing_the_email_is_refused(client) -> None:
    assert_weak(await register(client, "margarethamilton rocks", email="margarethamilton@example.org"))


async def test_all_lowercase_passphrase_is_accepted_without_composition_rules(client) -> None:
    password = "mellowgiraffeskating"
    assert len(password) == 20 and password.isalpha() and password.islower()
    response = await register(client, password)
    assert response.status_code == 201, response.text


async def test_password_is_normalised_with_nfkc_before_hashing(client) -> None:
    """The same password typed with a decomposed accent or fullwidth letters signs in."""
    email = new_email()
    decomposed = "cafe\u0301 au lait, s'il vous plai\u0302t"
    assert (await register(client, decomposed, email)).status_code == 201
    composed = unicodedata.normalize("NFC", decomposed)
    assert composed != decomposed
    assert (await login(client, email, composed)).status_code == 200


async def test_fullwidth_and_ascii_forms_of_a_password_are_the_same_password(client) -> None:
    email, password = new_email(), "Ｔｈｅ　ｑｕｉｅｔ　ｈａｒｂｏｒ"
    assert (await register(client, password, email)).status_code == 201
    assert (await login(client, email, "The quiet harbor")).status_code == 200


async def test_normalisation_does_not_merge_distinct_passwords(client) -> None:
    email = new_email()
    assert (await register(client, "cafe\u0301 au lait tonight", email)).status_code == 201
    assert (await login(client, email, "cafe au lait tonight")).status_code == 401


async def test_new_password_is_held_to_the_policy(client, user) -> None:
    response = await client.post("/api/v1/me/password", headers=user.headers, json={
        "current_password": user.password, "new_password": "password1234"})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "weak_password"
    assert body["errors"][0]["loc"] == ["body", "new_password"]


async def test_admin_created_account_is_held_to_the_policy(client, admin) -> None:
    response = await client.post("/api/v1/admin/users", headers=admin.headers, json={
        "email": new_email(), "password": "short", "roles": ["user"]})
    assert_weak(response)


# --- T6: Argon2id parameters --------------------------------------------------------------------

def test_production_settings_use_argon2id_at_owasp_cost() -> None:
    parameters = Settings(testing=False).password_hash_parameters
    assert parameters["memory_cost"] >= 19 * 1024
    assert parameters["time_cost"] >= 2
    assert parameters["parallelism"] >= 1


def test_production_hash_is_argon2id_with_19_mib_and_two_passes() -> None:
    hashing = PasswordHashing(**Settings(testing=False).password_hash_parameters)
    encoded = hashing.hash("a perfectly fine test password")
    assert encoded.startswith("$argon2id$")
    assert "m=19456,t=2" in encoded
    assert hashing.verify(encoded, "a perfectly fine test password")
    assert not hashing.verify(encoded, "a perfectly fine test passwore")


def test_hashes_are_salted() -> None:
    hashing = PasswordHashing(**Settings(testing=True).password_hash_parameters)
    assert hashing.hash("a perfectly fine test password") != hashing.hash("a perfectly fine test password")


async def test_stored_password_hash_is_argon2id_not_the_password(runtime, user) -> None:
    from mercato.accounts import repository

    async with runtime.db.read_session() as session:
        row = await repository.by_email(session, user.email)
    assert row is not None
    assert row.password_hash.startswith("$argon2id$")
    assert user.password not in row.password_hash
