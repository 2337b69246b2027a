"""Versions: upload validation through the API (I3–I5), SemVer "latest", submit, yank."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import httpx
import pytest

from mercato.config import Settings
from tests.catalog.support import V1, Shop, manifest_text, package_bytes
from tests.support.actors import Actor, Actors


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Small limits keep the over-size and member-count cases cheap.
    return settings.model_copy(update={"package_max_bytes": 256 * 1024, "package_max_members": 50})


@pytest.fixture
async def shop(client: httpx.AsyncClient, actors: Actors) -> Shop:
    return await Shop.open(client, actors)


def stored_files(settings: Settings) -> set[Path]:
    return {p for p in settings.data_dir.rglob("*") if p.is_file() and "artifacts" in p.parts}


def tar_with(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def file_info(path: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(path)
    info.size = len(data)
    return info, data


async def test_upload_records_checks_and_digest(shop: Shop, settings: Settings) -> None:
    listing = await shop.listing()
    data = package_bytes(listing["slug"], "1.0.0")
    response = await shop.upload(listing["slug"], "1.0.0", data=data, sha256=hashlib.sha256(data).hexdigest())
    assert response.status_code == 201, response.text
    version = response.json()
    assert version["status"] == "uploaded" and version["sha256"] == hashlib.sha256(data).hexdigest()
    assert version["size"] == len(data) and version["file_count"] == 3
    assert 0 <= version["checks"]["risk_score"] <= 100 and isinstance(version["checks"]["findings"], list)
    assert version["manifest"]["package"]["name"] == listing["slug"]
    assert any(p.name == version["sha256"] for p in stored_files(settings))
    assert not list((settings.data_dir / "tmp").glob("*"))


async def test_hostile_uploads_are_refused_and_leave_nothing(shop: Shop, settings: Settings,
                                                             client: httpx.AsyncClient) -> None:
    listing = await shop.listing()
    slug = listing["slug"]
    good = manifest_text(slug, "1.0.0").encode()
    link = tarfile.TarInfo("bin/evil")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("mercato.toml", good)
        archive.writestr("../../outside.txt", b"escape")
    cases = {
        "archive_unsafe_path": tar_with([file_info("mercato.toml", good), file_info("../escape.sh", b"x")]),
        "archive_link": tar_with([file_info("mercato.toml", good), (link, None)]),
        "archive_duplicate_member": tar_with([file_info("mercato.toml", good), file_info("a.txt", b"1"),
                                              file_info("A.TXT", b"2")]),
        "manifest_missing": tar_with([file_info("README.md", b"no manifest")]),
        "manifest_invalid": package_bytes(slug, "1.0.0", manifest=manifest_text(slug, "1.0.0") + "\n[typo]\nx = 1\n"),
        "archive_unsupported": b"this is not an archive at all",
        "launch_entry_missing": package_bytes(slug, "1.0.0", manifest=manifest_text(slug, "1.0.0").replace(
            'entry = "bin/run"', 'entry = "bin/not-there"')),
        "archive_too_many_members": tar_with([file_info("mercato.toml", good)]
                                             + [file_info(f"f{i}.txt", b"") for i in range(60)]),
    }
    before = stored_files(settings)
    for code, data in cases.items():
        response = await shop.upload(slug, "1.0.0", data=data)
        assert response.status_code == 422 and response.json()["code"] == code, (code, response.text)
    zip_response = await shop.upload(slug, "1.0.0", data=zipped.getvalue())
    assert zip_response.status_code == 422 and zip_response.json()["code"] == "archive_unsafe_path"
    assert stored_files(settings) == before
    assert not list((settings.data_dir / "tmp").glob("*"))
    assert not (settings.data_dir.parent / "outside.txt").exists()
    versions = await client.get(f"{V1}/listings/{slug}/versions", headers=shop.developer.headers)
    assert versions.json()["items"] == []


async def test_checksum_mismatch_duplicate_and_mismatched_manifest(shop: Shop) -> None:
    listing = await shop.listing()
    slug = listing["slug"]
    wrong = await shop.upload(slug, "1.0.0", sha256="0" * 64)
    assert wrong.status_code == 422 and wrong.json()["code"] == "checksum_mismatch"
    assert (await shop.upload(slug, "1.0.0")).status_code == 201
    again = await shop.upload(slug, "1.0.0")
    assert again.status_code == 409 and again.json()["code"] == "version_exists"
    other_name = await shop.upload(slug, "1.1.0", data=package_bytes("someone-else", "1.1.0"))
    assert other_name.status_code == 422 and other_name.json()["code"] == "manifest_mismatch"
    other_kind = await shop.upload(slug, "1.1.0", kind="game")
    assert other_kind.status_code == 422 and other_kind.json()["code"] == "manifest_mismatch"


async def test_oversized_upload_is_refused_before_the_body_is_read(shop: Shop, client: httpx.AsyncClient) -> None:
    listing = await shop.listing()
    consumed = 0

    async def body() -> object:
        nonlocal consumed
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="p.tar.gz"\r\n\r\n'
        for _ in range(1024):
            consumed += 64 * 1024
            yield b"x" * (64 * 1024)

    response = await client.post(f"{V1}/listings/{listing['slug']}/versions", headers={
        **shop.developer.headers, "Content-Type": "multipart/form-data; boundary=x",
        "Content-Length": str(64 * 1024 * 1024)}, content=body())
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"
    assert consumed <= 64 * 1024
    chunked = await client.post(f"{V1}/listings/{listing['slug']}/versions", headers={
        **shop.developer.headers, "Content-Type": "multipart/form-data; boundary=x"}, content=body())
    assert chunked.status_code == 413


async def test_only_members_upload(shop: Shop, client: httpx.AsyncClient, user: Actor) -> None:
    listing = await shop.listing()
    anonymous = await client.post(f"{V1}/listings/{listing['slug']}/versions",
                                  files={"file": ("p.tar.gz", b"x", "application/gzip")})
    assert anonymous.status_code == 401
    assert (await shop.upload(listing["slug"], "1.0.0", as_actor=user)).status_code == 403
    assert (await shop.upload("no-such-listing", "1.0.0")).status_code == 404


async def test_latest_follows_semver_and_yank(shop: Shop, client: httpx.AsyncClient, user: Actor) -> None:
    listing = await shop.published(version="1.0.0")
    slug = listing["slug"]
    for version in ("1.10.0", "1.9.0", "2.0.0-rc.1"):
        assert (await shop.upload(slug, version)).status_code == 201
        await shop.submit(slug, version)
        await shop.decide(slug, version)
    detail = (await client.get(f"{V1}/listings/{slug}", headers=shop.developer.headers)).json()
    assert detail["latest_version"]["version"] == "1.10.0"  # the highest release, not the pre-release
    yanked = await client.post(f"{V1}/listings/{slug}/versions/1.10.0/yank", headers=shop.developer.headers,
                               json={"reason": "Broken migration"})
    assert yanked.status_code == 200 and yanked.json()["status"] == "yanked"
    detail = (await client.get(f"{V1}/listings/{slug}", headers=shop.developer.headers)).json()
    assert detail["latest_version"]["version"] == "1.9.0"
    public = await client.get(f"{V1}/listings/{slug}/versions", headers=user.headers)
    assert [v["version"] for v in public.json()["items"]] == ["2.0.0-rc.1", "1.10.0", "1.9.0", "1.0.0"]
    assert (await client.post(f"{V1}/listings/{slug}/versions/2.0.0-rc.1/yank", headers=shop.developer.headers,
                              json={"reason": "Broken migration"})).status_code == 200
    twice = await client.post(f"{V1}/listings/{slug}/versions/2.0.0-rc.1/yank", headers=shop.developer.headers,
                              json={"reason": "Again"})
    assert twice.status_code == 409 and twice.json()["code"] == "invalid_transition"


async def test_a_listing_with_only_pre_releases_shows_its_highest(shop: Shop, client: httpx.AsyncClient) -> None:
    listing = await shop.published(version="1.0.0-beta.1")
    slug = listing["slug"]
    assert (await shop.upload(slug, "1.0.0-beta.2")).status_code == 201
    await shop.submit(slug, "1.0.0-beta.2")
    await shop.decide(slug, "1.0.0-beta.2")
    detail = (await client.get(f"{V1}/listings/{slug}", headers=shop.developer.headers)).json()
    assert detail["latest_version"]["version"] == "1.0.0-beta.2"  # no release yet: the highest pre-release
    assert (await shop.upload(slug, "0.9.0")).status_code == 201
    await shop.submit(slug, "0.9.0")
    await shop.decide(slug, "0.9.0")
    detail = (await client.get(f"{V1}/listings/{slug}", headers=shop.developer.headers)).json()
    assert detail["latest_version"]["version"] == "0.9.0"  # a release, however lower, wins over betas


async def test_submission_moves_version_and_new_listing_into_review(shop: Shop, client: httpx.AsyncClient,
                                                                   user: Actor) -> None:
    listing = await shop.listing()
    slug = listing["slug"]
    nothing = await client.post(f"{V1}/listings/{slug}/submit", headers=shop.developer.headers)
    assert nothing.status_code == 409 and nothing.json()["code"] == "nothing_to_submit"
    await shop.upload(slug, "0.1.0")
    submitted = await client.post(f"{V1}/listings/{slug}/submit", headers=shop.developer.headers)
    assert submitted.status_code == 200 and submitted.json()["status"] == "in_review"
    again = await client.post(f"{V1}/listings/{slug}/versions/0.1.0/submit", headers=shop.developer.headers)
    assert again.status_code == 409
    own = (await client.get(f"{V1}/listings/{slug}", headers=shop.developer.headers)).json()
    assert own["status"] == "in_review"
    assert (await client.get(f"{V1}/listings/{slug}", headers=user.headers)).status_code == 404
    task = await shop.task_of(slug, "0.1.0")
    assert task["status"] == "pending" and task["listing"]["status"] == "in_review"


# --- the caller and the listing are checked before the body is read (issue 11, item 4) -----------

class CountingBody:
    """A chunked multipart body that records how much of it the server pulled."""

    def __init__(self, chunks: int = 16) -> None:
        self.boundary = "mercato-test-boundary"
        self.chunks = chunks
        self.pulled = 0

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Type": f"multipart/form-data; boundary={self.boundary}"}

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        self.pulled += 1
        yield (f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.tar.gz\"\r\n"
               "Content-Type: application/gzip\r\n\r\n").encode()
        for _ in range(self.chunks):
            self.pulled += 1
            yield bytes(4096)
        yield f"\r\n--{self.boundary}--\r\n".encode()


async def test_an_upload_is_refused_before_its_body_is_read(shop: Shop, client: httpx.AsyncClient, user: Actor,
                                                            actors: Actors) -> None:
    listing = await shop.listing()
    outsider = await actors.create("developer")  # holds version:upload, not a member of this publisher
    cases = [
        (f"{V1}/listings/{listing['slug']}/versions", {}, 401),  # anonymous
        (f"{V1}/listings/{listing['slug']}/versions", user.headers, 403),  # no version:upload
        (f"{V1}/listings/{listing['slug']}/versions", outsider.headers, 404),  # not their listing
        (f"{V1}/listings/no-such-listing/versions", shop.developer.headers, 404),  # no listing
    ]
    for url, headers, status in cases:
        body = CountingBody()
        response = await client.post(url, headers={**headers, **body.headers}, content=body)
        assert response.status_code == status, (url, headers, response.text)
        assert body.pulled == 0, (status, body.pulled)


async def test_an_upload_without_a_file_part_is_a_422(shop: Shop, client: httpx.AsyncClient) -> None:
    listing = await shop.listing()
    url = f"{V1}/listings/{listing['slug']}/versions"
    response = await client.post(url, headers=shop.developer.headers, data={"sha256": "0" * 64},
                                 files={"other": ("x", b"x")})
    assert response.status_code == 422 and response.json()["errors"][0]["loc"] == ["body", "file"], response.text
    bad_sum = await client.post(url, headers=shop.developer.headers, data={"sha256": "nothex"},
                                files={"file": ("x.tar.gz", package_bytes(listing["slug"], "1.0.0"))})
    assert bad_sum.status_code == 422 and bad_sum.json()["errors"][0]["loc"] == ["body", "sha256"], bad_sum.text


async def test_a_token_scoped_to_upload_makes_the_first_upload_to_a_draft(shop: Shop, client: httpx.AsyncClient,
                                                                         actors: Actors) -> None:
    """The documented scope `version:upload@slug` is enough: holding the change on a listing
    shows it for that change, though `listing:read` is not in the token."""
    draft = await shop.listing()
    slug = draft["slug"]
    created = await client.post(f"{V1}/me/tokens", headers=shop.developer.headers,
                                json={"name": "ci", "scopes": [f"version:upload@{slug}"]})
    assert created.status_code == 201, created.text
    ci = Actor(id=shop.developer.id, email=shop.developer.email, password="", access_token=created.json()["token"],
               refresh_token="")
    assert (await client.get(f"{V1}/listings/{slug}", headers=ci.headers)).status_code == 404  # no listing:read
    uploaded = await shop.upload(slug, "0.1.0", as_actor=ci)
    assert uploaded.status_code == 201, uploaded.text
    other = await shop.listing()
    refused = await shop.upload(other["slug"], "0.1.0", as_actor=ci)  # outside the scope: as if absent
    assert refused.status_code == 404 and refused.json()["code"] == "listing_not_found"
    stranger = await actors.create()
    await actors.publisher(stranger)  # a developer of another publisher: holds version:upload (own)
    stranger = await actors.login(stranger.email, stranger.password, user_id=stranger.id)
    hidden = await shop.upload(slug, "0.2.0", as_actor=stranger)
    assert hidden.status_code == 404 and hidden.json()["code"] == "listing_not_found"  # a draft stays hidden
