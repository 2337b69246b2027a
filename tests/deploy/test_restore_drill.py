"""The backup-and-restore drill of docs/operations.md, performed: a store on PostgreSQL with its
archives in an S3 bucket is backed up (pg_dump, then a copy of the bucket), restored into a new
empty database and a new bucket (pg_restore, copy back), migrated, and must then serve the same
accounts, catalog and downloads, with the same signatures."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from mercato.app import create_app
from mercato.app.bootstrap import prepare_database
from mercato.app.runtime import Runtime
from mercato.bus.registry import load_handlers
from mercato.bus.service import wait_idle
from mercato.config import Settings
from tests.catalog.support import Shop
from tests.kit import s3server
from tests.support.actors import Actors
from tests.support.backends import REDIS_URL, pg_admin

pytestmark = [pytest.mark.postgres,
              pytest.mark.skipif(shutil.which("pg_dump") is None or shutil.which("pg_restore") is None,
                                 reason="pg_dump and pg_restore are needed (postgresql-client)")]

V1 = "/api/v1"
TABLES = ("users", "publishers", "listings", "listing_versions", "review_tasks", "audit_log", "outbox")


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with s3server.moto_server() as endpoint:
        yield endpoint


def _new_bucket(endpoint: str) -> str:
    bucket = f"mercato-{uuid.uuid4().hex[:12]}"
    s3server.admin_client(endpoint).create_bucket(Bucket=bucket)
    return bucket


def _store_settings(database_url: str, data_dir: Path, endpoint: str, bucket: str, signing_key: str) -> Settings:
    return Settings(data_dir=data_dir, database_url=database_url, testing=True,
                    secret_key="test-secret-key-of-reasonable-length-0123456789", signing_key=signing_key,
                    storage_url=f"s3://{bucket}/store?endpoint_url={endpoint}&region={s3server.REGION}",
                    s3_access_key_id=s3server.ACCESS_KEY_ID, s3_secret_access_key=s3server.SECRET_ACCESS_KEY,
                    redis_url=REDIS_URL, redis_namespace=f"mercato-test-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def signing_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def settings(database_url: str, tmp_path: Path, s3_endpoint: str, signing_key: str) -> Settings:
    """The store under test keeps its archives in S3, as the scaled form does."""
    return _store_settings(database_url, tmp_path / "live", s3_endpoint, _new_bucket(s3_endpoint), signing_key)


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _run(*command: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{command[0]} failed: {result.stderr[-2000:]}"


def _bucket_of(settings: Settings) -> str:
    assert settings.storage_url
    return settings.storage_url.removeprefix("s3://").split("/", 1)[0]


def _copy_bucket_out(endpoint: str, bucket: str, target: Path) -> int:
    client = s3server.admin_client(endpoint)
    copied = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            path = target / item["Key"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
            copied += 1
    return copied


def _copy_bucket_in(endpoint: str, source: Path, bucket: str) -> None:
    client = s3server.admin_client(endpoint)
    for path in source.rglob("*"):
        if path.is_file():
            client.put_object(Bucket=bucket, Key=str(path.relative_to(source)), Body=path.read_bytes())


async def _counts(runtime: Runtime) -> dict[str, int]:
    async with runtime.db.read_session() as session:
        return {table: int((await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())
                for table in TABLES}


async def _download(client: httpx.AsyncClient, slug: str, version: str, headers: dict[str, str]) -> httpx.Response:
    return await client.get(f"{V1}/listings/{slug}/versions/{version}/download", headers=headers)


@pytest.fixture
async def restored_database() -> AsyncIterator[str]:
    from tests.support.backends import admin_url

    name = f"mercato_restored_{uuid.uuid4().hex[:12]}"
    await pg_admin(f'CREATE DATABASE "{name}"')
    yield admin_url(name)
    await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_a_backup_restores_into_a_new_database_and_bucket(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, settings: Settings, s3_endpoint: str,
        signing_key: str, restored_database: str, tmp_path: Path) -> None:
    # a store with accounts, a publisher, a reviewed and published listing, an archive in S3
    shop = await Shop.open(client, actors)
    listing = await shop.published()
    slug, version = listing["slug"], "1.0.0"
    original = await _download(client, slug, version, shop.developer.headers)
    assert original.status_code == 200, original.text
    await wait_idle(runtime.db, load_handlers())  # nothing owed: the copy is what the counts say
    before = await _counts(runtime)
    assert before["listing_versions"] >= 1 and before["users"] >= 3

    # backup, in the runbook's order: the database, then the bucket
    dump = tmp_path / "mercato.dump"
    await asyncio.to_thread(_run, "pg_dump", "--format=custom", f"--file={dump}",
                            f"--dbname={_libpq(settings.resolved_database_url)}")
    backup = tmp_path / "bucket-backup"
    assert await asyncio.to_thread(_copy_bucket_out, s3_endpoint, _bucket_of(settings), backup) >= 1

    # restore into an empty database and an empty bucket
    await asyncio.to_thread(_run, "pg_restore", "--no-owner", "--exit-on-error",
                            f"--dbname={_libpq(restored_database)}", str(dump))
    new_bucket = _new_bucket(s3_endpoint)
    restored = _store_settings(restored_database, tmp_path / "restored", s3_endpoint, new_bucket, signing_key)
    await asyncio.to_thread(prepare_database, restored)  # mercato migrate: brings an older dump forward

    runtime2 = Runtime.from_settings(restored)
    app = create_app(runtime=runtime2)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://restored.test") as again:
                ready = await again.get("/readyz")
                assert ready.status_code == 200, ready.text
                assert await _counts(runtime2) == before

                # the accounts came back: the developer signs in with their password
                signed_in = await again.post(f"{V1}/auth/login", json={
                    "email": shop.developer.email, "password": shop.developer.password})
                assert signed_in.status_code == 200, signed_in.text
                headers = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}

                # the database alone is not a restore: the archive is missing until the bucket is back
                missing = await _download(again, slug, version, headers)
                assert missing.status_code == 404, missing.text

                await asyncio.to_thread(_copy_bucket_in, s3_endpoint, backup, new_bucket)
                download = await _download(again, slug, version, headers)
                assert download.status_code == 200, download.text
                assert download.content == original.content
                assert hashlib.sha256(download.content).hexdigest() == original.headers["X-Checksum-SHA256"]
                for header in ("X-Signature-Ed25519", "X-Signature-Key-Id"):
                    assert download.headers[header] == original.headers[header], header

                detail = await again.get(f"{V1}/listings/{slug}")
                assert detail.status_code == 200 and detail.json()["id"] == listing["id"]
    finally:
        await runtime2.close()
