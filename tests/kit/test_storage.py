"""The artifact store contract, run against both adapters: local files and S3 (a moto
server this module starts as a subprocess, one bucket per test)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mercato.config import Settings
from mercato.kit.errors import PayloadTooLarge
from mercato.kit.storage import (
    CHUNK_SIZE,
    ArtifactMissing,
    ArtifactStore,
    DigestMismatch,
    InvalidDigest,
    LocalArtifactStore,
    S3ArtifactStore,
    S3Credentials,
    StoredBlob,
    open_store,
)
from tests.kit import s3server

MiB = 1024 * 1024
CONTENT = bytes(range(256)) * 400  # 102,400 bytes
CONTENT_DIGEST = hashlib.sha256(CONTENT).hexdigest()


@dataclass
class Harness:
    store: ArtifactStore
    leftovers: Callable[[], Awaitable[list[str]]]  # every object, temp file and unfinished upload


@dataclass
class S3Service:
    endpoint: str
    admin: Any  # a blocking boto3 client

    def new_bucket(self) -> str:
        bucket = f"mercato-{uuid.uuid4().hex}"
        self.admin.create_bucket(Bucket=bucket)
        return bucket

    def store(self, bucket: str, prefix: str = "", **options: Any) -> S3ArtifactStore:
        return S3ArtifactStore(bucket, prefix, endpoint_url=self.endpoint, region=s3server.REGION,
                               credentials=S3Credentials(s3server.ACCESS_KEY_ID, s3server.SECRET_ACCESS_KEY),
                               **options)


@pytest.fixture(scope="module")
def s3_service() -> Iterator[S3Service]:
    with s3server.moto_server() as endpoint:
        yield S3Service(endpoint, s3server.admin_client(endpoint))


def _files_under(*roots: Path) -> list[str]:
    return sorted(str(path) for root in roots if root.exists() for path in root.rglob("*") if path.is_file())


@pytest.fixture(params=["local", "s3"])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    if request.param == "local":
        root = tmp_path / "artifacts"

        async def local_leftovers() -> list[str]:
            return _files_under(root)

        yield Harness(LocalArtifactStore(root), local_leftovers)
        return
    service: S3Service = request.getfixturevalue("s3_service")
    bucket = service.new_bucket()
    spool = tmp_path / "spool"
    # small parts, one at a time: an upload holds about 2 x part_size x max_concurrency bytes,
    # which keeps the 20 MiB streaming test meaningful (parallel parts: see the S3 tests below)
    store = service.store(bucket, "artifacts", spool_dir=spool, part_size=5 * MiB, max_concurrency=1)

    async def s3_leftovers() -> list[str]:
        return s3server.leftovers(service.admin, bucket) + _files_under(spool)

    try:
        yield Harness(store, s3_leftovers)
    finally:
        await store.close()


@pytest.fixture
def store(harness: Harness) -> ArtifactStore:
    return harness.store


async def chunked(data: bytes, size: int = 10_000) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset:offset + size]


async def read_all(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


# --- round trips -------------------------------------------------------------------------

async def test_a_stream_round_trips(store: ArtifactStore) -> None:
    blob = await store.put(chunked(CONTENT), max_bytes=len(CONTENT))

    assert blob == StoredBlob(CONTENT_DIGEST, len(CONTENT))
    assert await store.exists(CONTENT_DIGEST)
    assert await store.size(CONTENT_DIGEST) == len(CONTENT)
    assert await read_all(store.open(CONTENT_DIGEST)) == CONTENT


async def test_a_file_round_trips_and_stays_with_the_caller(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "upload.bin"
    source.write_bytes(CONTENT)

    blob = await store.put_file(source)

    assert blob == StoredBlob(CONTENT_DIGEST, len(CONTENT))
    assert await read_all(store.open(CONTENT_DIGEST)) == CONTENT
    source.unlink()  # the caller may delete its temp file; the stored copy remains
    assert await read_all(store.open(CONTENT_DIGEST)) == CONTENT


async def test_empty_content_round_trips(store: ArtifactStore) -> None:
    blob = await store.put(chunked(b""), max_bytes=10)

    assert blob == StoredBlob(hashlib.sha256(b"").hexdigest(), 0)
    assert await store.size(blob.digest) == 0
    assert await read_all(store.open(blob.digest)) == b""
    assert await read_all(store.open(blob.digest, start=0, end=10)) == b""


async def test_the_same_content_twice_is_one_object(harness: Harness, tmp_path: Path) -> None:
    source = tmp_path / "again.bin"
    source.write_bytes(CONTENT)

    first = await harness.store.put(chunked(CONTENT), max_bytes=MiB)
    second = await harness.store.put(chunked(CONTENT, 777), max_bytes=MiB)
    third = await harness.store.put_file(source, digest=CONTENT_DIGEST)

    assert first == second == third
    assert len(await harness.leftovers()) == 1


async def test_concurrent_puts_of_the_same_content_agree(harness: Harness, tmp_path: Path) -> None:
    data = os.urandom(MiB + 12_345)
    digest = hashlib.sha256(data).hexdigest()
    files = []
    for index in range(3):
        files.append(tmp_path / f"copy-{index}.bin")
        files[-1].write_bytes(data)

    blobs = await asyncio.gather(*[harness.store.put(chunked(data, 64 * 1024), max_bytes=2 * MiB)
                                   for _ in range(5)],
                                 *[harness.store.put_file(path) for path in files])

    assert set(blobs) == {StoredBlob(digest, len(data))}
    assert hashlib.sha256(await read_all(harness.store.open(digest))).hexdigest() == digest
    assert len(await harness.leftovers()) == 1


# --- verification and limits -------------------------------------------------------------

async def test_put_file_with_the_right_digest_is_accepted(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "upload.bin"
    source.write_bytes(CONTENT)

    assert await store.put_file(source, digest=CONTENT_DIGEST) == StoredBlob(CONTENT_DIGEST, len(CONTENT))


async def test_put_file_with_a_wrong_digest_is_refused_and_stores_nothing(harness: Harness, tmp_path: Path) -> None:
    source = tmp_path / "upload.bin"
    source.write_bytes(CONTENT)
    claimed = hashlib.sha256(b"something else").hexdigest()

    with pytest.raises(DigestMismatch):
        await harness.store.put_file(source, digest=claimed)

    assert not await harness.store.exists(claimed)
    assert not await harness.store.exists(CONTENT_DIGEST)
    assert await harness.leftovers() == []


async def test_a_stream_over_the_limit_is_refused_and_leaves_nothing(harness: Harness) -> None:
    with pytest.raises(PayloadTooLarge):
        await harness.store.put(chunked(CONTENT), max_bytes=len(CONTENT) - 1)

    assert not await harness.store.exists(CONTENT_DIGEST)
    assert await harness.leftovers() == []


async def test_a_stream_of_exactly_the_limit_is_accepted(store: ArtifactStore) -> None:
    assert (await store.put(chunked(CONTENT), max_bytes=len(CONTENT))).size == len(CONTENT)


# --- reading ranges ----------------------------------------------------------------------

@pytest.mark.parametrize(("start", "end"), [
    (0, None),             # everything
    (1000, None),          # from an offset to the end
    (1000, 5000),          # a slice
    (0, 1),                # the first byte
    (700, 700),            # empty
    (90_000, 10_000_000),  # end beyond the size: clamped
    (102_400, None),       # start at the end: empty
    (200_000, None),       # start past the end: empty
    (200_000, 300_000),
])
async def test_a_range_reads_bytes_start_to_end_exclusive(store: ArtifactStore, start: int, end: int | None) -> None:
    await store.put(chunked(CONTENT), max_bytes=MiB)

    assert await read_all(store.open(CONTENT_DIGEST, start=start, end=end)) == CONTENT[start:end]


@pytest.mark.parametrize(("start", "end"), [(-1, None), (10, 5)])
async def test_an_impossible_range_is_refused(store: ArtifactStore, start: int, end: int | None) -> None:
    with pytest.raises(ValueError):
        store.open(CONTENT_DIGEST, start=start, end=end)


# --- missing, malformed, deleted ---------------------------------------------------------

@pytest.mark.parametrize(("start", "end"), [(0, None), (10, 20), (5, 5), (10**9, None)])
async def test_a_missing_digest_raises_artifact_missing(store: ArtifactStore, start: int, end: int | None) -> None:
    missing = hashlib.sha256(b"never stored").hexdigest()

    with pytest.raises(ArtifactMissing) as raised:
        await read_all(store.open(missing, start=start, end=end))

    assert (raised.value.status, raised.value.code) == (404, "artifact_missing")
    assert await store.size(missing) is None
    assert not await store.exists(missing)


@pytest.mark.parametrize("digest", [
    "../../../etc/passwd",
    CONTENT_DIGEST.upper(),
    CONTENT_DIGEST[:-1],
    CONTENT_DIGEST + "0",
    "g" * 64,
    f"{CONTENT_DIGEST[:32]}/{CONTENT_DIGEST[33:]}",
    "",
])
async def test_a_malformed_digest_is_refused(store: ArtifactStore, tmp_path: Path, digest: str) -> None:
    source = tmp_path / "upload.bin"
    source.write_bytes(CONTENT)

    for attempt in (lambda: store.exists(digest), lambda: store.size(digest), lambda: store.delete(digest),
                    lambda: store.put_file(source, digest=digest), lambda: read_all(store.open(digest))):
        with pytest.raises(InvalidDigest):
            await attempt()


async def test_delete_removes_the_object_and_is_idempotent(harness: Harness) -> None:
    await harness.store.put(chunked(CONTENT), max_bytes=MiB)

    await harness.store.delete(CONTENT_DIGEST)
    await harness.store.delete(CONTENT_DIGEST)

    assert not await harness.store.exists(CONTENT_DIGEST)
    with pytest.raises(ArtifactMissing):
        await read_all(harness.store.open(CONTENT_DIGEST))
    assert await harness.leftovers() == []


# --- streaming -----------------------------------------------------------------------------

async def test_a_20_mib_stream_is_never_held_in_memory(store: ArtifactStore) -> None:
    total, block_size = 20 * MiB, 64 * 1024
    expected = hashlib.sha256()
    produced = 0

    async def blocks() -> AsyncIterator[bytes]:
        nonlocal produced
        for index in range(total // block_size):
            block = hashlib.sha256(index.to_bytes(8, "big")).digest() * (block_size // 32)
            expected.update(block)
            produced += len(block)
            yield block

    tracemalloc.start()
    try:
        blob = await store.put(blocks(), max_bytes=total)
        _, peak_put = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()

        read_back = hashlib.sha256()
        largest_chunk = 0
        async for chunk in store.open(blob.digest):
            read_back.update(chunk)
            largest_chunk = max(largest_chunk, len(chunk))
        _, peak_read = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert blob == StoredBlob(expected.hexdigest(), total) and produced == total
    assert read_back.hexdigest() == blob.digest
    assert largest_chunk <= CHUNK_SIZE
    # the generator was consumed as it went, and reading streamed: far below the 20 MiB
    assert peak_put < 14 * MiB, f"put held {peak_put / MiB:.1f} MiB"
    assert peak_read < 4 * MiB, f"open held {peak_read / MiB:.1f} MiB"


# --- choosing an adapter -------------------------------------------------------------------

def test_open_store_defaults_to_files_in_the_data_dir(tmp_path: Path) -> None:
    store = open_store(Settings(data_dir=tmp_path, storage_url=None))

    assert isinstance(store, LocalArtifactStore) and store.root == tmp_path / "artifacts"


def test_open_store_reads_a_file_url(tmp_path: Path) -> None:
    store = open_store(Settings(data_dir=tmp_path, storage_url=f"file://{tmp_path}/blobs"))

    assert isinstance(store, LocalArtifactStore) and store.root == tmp_path / "blobs"


def test_open_store_reads_an_s3_url(tmp_path: Path) -> None:
    store = open_store(Settings(
        data_dir=tmp_path, s3_access_key_id="key", s3_secret_access_key="secret",
        storage_url="s3://packages/mercato/prod?endpoint_url=http://127.0.0.1:9000&region=eu-west-1"))

    assert isinstance(store, S3ArtifactStore)
    assert (store.bucket, store.prefix, store.endpoint_url, store.region) == (
        "packages", "mercato/prod", "http://127.0.0.1:9000", "eu-west-1")
    assert store.key_of(CONTENT_DIGEST) == f"mercato/prod/{CONTENT_DIGEST[:2]}/{CONTENT_DIGEST}"


@pytest.mark.parametrize("url", [
    "ftp://example.com/x", "file://relative/path", "s3:///no-bucket", "s3://bucket?colour=blue",
])
def test_open_store_refuses_a_url_it_cannot_use(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValueError):
        open_store(Settings(data_dir=tmp_path, storage_url=url))


def test_open_store_refuses_half_a_credential(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="both"):
        open_store(Settings(data_dir=tmp_path, storage_url="s3://bucket", s3_access_key_id="key",
                            s3_secret_access_key=None))


# --- S3 only: multipart uploads ----------------------------------------------------------

async def test_s3_uploads_parts_in_parallel_and_in_order(s3_service: S3Service, tmp_path: Path) -> None:
    bucket = s3_service.new_bucket()
    store = s3_service.store(bucket, part_size=5 * MiB, max_concurrency=4)
    data = os.urandom(17 * MiB)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    try:
        blob = await store.put_file(source)

        assert await read_all(store.open(blob.digest)) == data
        start, end = 5 * MiB - 3, 5 * MiB + 3
        assert await read_all(store.open(blob.digest, start=start, end=end)) == data[start:end]
        assert s3server.leftovers(s3_service.admin, bucket) == [f"{blob.digest[:2]}/{blob.digest}"]
    finally:
        await store.close()


async def test_s3_a_failed_multipart_upload_is_aborted(s3_service: S3Service, tmp_path: Path) -> None:
    bucket = s3_service.new_bucket()
    store = s3_service.store(bucket, part_size=5 * MiB, max_concurrency=2)
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(12 * MiB))
    client = await store._s3()
    upload_part = client.upload_part

    async def failing_upload_part(**kwargs: object) -> object:
        if kwargs["PartNumber"] == 2:
            raise ConnectionError("the network went away")
        return await upload_part(**kwargs)

    client.upload_part = failing_upload_part
    try:
        with pytest.raises(ConnectionError):
            await store.put_file(source)

        assert s3server.leftovers(s3_service.admin, bucket) == []
    finally:
        await store.close()
