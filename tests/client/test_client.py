"""The client's own behaviour at the HTTP edge: error parsing, network failures and streamed
uploads. Everything that needs a store runs against a real one in tests/cli/test_publisher_cli.py."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import httpx
import pytest

from mercato.client import ApiError, ChecksumMismatch, ClientError, MercatoClient, credentials
from mercato.client.transfer import CHUNK_SIZE

SERVER = "http://store.test"


def _client(handler, **kwargs) -> MercatoClient:  # type: ignore[no-untyped-def]
    return MercatoClient(SERVER, "mrc_token", transport=httpx.MockTransport(handler), **kwargs)


def test_a_problem_document_becomes_an_api_error_with_every_field() -> None:
    problem = {"type": "https://mercato.dev/problems/manifest_invalid", "title": "The manifest is not valid",
               "status": 422, "detail": "mercato.toml has 1 problem.", "code": "manifest_invalid",
               "request_id": "req-1", "errors": [{"loc": ["package", "nmae"], "msg": "unknown key", "type": "x"}]}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json=problem, headers={"content-type": "application/problem+json"})

    with _client(handler) as client, pytest.raises(ApiError) as caught:
        client.get_listing("hello-notes")
    error = caught.value
    assert (error.status, error.code, error.title, error.detail, error.request_id) == (
        422, "manifest_invalid", "The manifest is not valid", "mercato.toml has 1 problem.", "req-1")
    assert error.errors == problem["errors"]
    assert str(error) == "manifest_invalid: mercato.toml has 1 problem. ([package] nmae: unknown key)"


def test_body_locations_are_dropped_and_long_field_lists_are_cut_short() -> None:
    errors = [{"loc": ["body", f"field{i}"], "msg": "required", "type": "missing"} for i in range(5)]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"code": "validation_failed", "title": "The request is not valid",
                                         "detail": "The request is not valid", "status": 422, "errors": errors})

    with _client(handler) as client, pytest.raises(ApiError) as caught:
        client.yank_version("hello-notes", "1.0.0", "")
    assert str(caught.value) == ("validation_failed: The request is not valid (field0: required; field1: required; "
                                 "field2: required; and 2 more)")


def test_a_non_json_error_falls_back_to_the_status_line_and_an_excerpt() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="upstream\nconnect error", headers={"content-type": "text/plain"})

    with _client(handler) as client, pytest.raises(ApiError) as caught:
        client.me()
    error = caught.value
    assert (error.status, error.code) == (502, "bad_gateway")
    assert str(error) == "bad_gateway: HTTP 502 Bad Gateway: upstream connect error"


def test_an_html_error_page_is_not_dumped_into_the_message() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, html="<html><body><h1>Not Found</h1>" + "x" * 5000 + "</body></html>")

    with _client(handler) as client, pytest.raises(ApiError) as caught:
        client.me()
    assert str(caught.value) == "not_found: HTTP 404 Not Found"


def test_rate_limits_say_when_to_retry() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "42"}, json={
            "code": "rate_limited", "title": "Too many requests", "detail": "Too many sign-in attempts.",
            "status": 429})

    with _client(handler) as client, pytest.raises(ApiError) as caught:
        client.login("a@example.org", "wrong")
    assert caught.value.retry_after == "42" and str(caught.value).endswith("retry after 42 s")


def test_connection_refused_is_a_readable_client_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with MercatoClient(f"http://127.0.0.1:{port}", "t", timeout=5) as client, pytest.raises(ClientError) as caught:
        client.me()
    assert not isinstance(caught.value, ApiError)
    assert str(caught.value) == f"cannot reach http://127.0.0.1:{port}: connection refused"


def test_an_unknown_host_is_a_readable_client_error() -> None:
    with MercatoClient("http://no-such-host.invalid", "t", timeout=5) as client, pytest.raises(ClientError) as caught:
        client.me()
    assert str(caught.value) == "cannot reach http://no-such-host.invalid: unknown host"


def test_a_timeout_is_a_readable_client_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with _client(handler) as client, pytest.raises(ClientError) as caught:
        client.me()
    assert str(caught.value) == f"cannot reach {SERVER}: timed out"


@pytest.mark.parametrize("given, expected", [
    ("http://localhost:8000/", "http://localhost:8000"),
    ("https://store.example.org/api/v1/", "https://store.example.org"),
    (" http://127.0.0.1:9 ", "http://127.0.0.1:9"),
])
def test_server_urls_are_normalised(given: str, expected: str) -> None:
    assert MercatoClient(given).server == expected


def test_a_server_without_a_scheme_is_refused_with_an_example() -> None:
    with pytest.raises(ClientError, match="give one like http://localhost:8000"):
        MercatoClient("localhost:8000")


class StreamingTransport(httpx.BaseTransport):
    """Like MockTransport, but hands the handler the request body as the chunks the client
    produces (MockTransport reads the whole body first), so streaming is observable."""

    def __init__(self, handler) -> None:  # type: ignore[no-untyped-def]
        self.handler = handler

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.handler(request)


def _package(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "hello-notes-1.0.0.tar.gz"
    block = bytes(range(256)) * 4096
    with open(path, "wb") as handle:
        written = 0
        while written < size:
            piece = block[: size - written]
            handle.write(piece)
            written += len(piece)
    return path


def test_upload_streams_the_file_in_chunks_with_its_checksum_and_reports_progress_to_the_end(
        tmp_path: Path) -> None:
    size = 5 * CHUNK_SIZE + 123
    path = _package(tmp_path, size)
    seen: dict[str, object] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        chunks = list(request.stream)  # the body arrives as pieces, never as one buffer
        seen["chunks"] = len(chunks)
        seen["largest"] = max(len(c) for c in chunks)
        body = b"".join(chunks)
        seen["length_header"] = int(request.headers["content-length"])
        seen["length"] = len(body)
        seen["content_type"] = request.headers["content-type"]
        seen["body"] = body
        return httpx.Response(201, json={"id": "v1", "listing_id": "l1", "version": "1.0.0", "status": "uploaded",
                                         "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "size": size})

    calls: list[tuple[int, int]] = []
    with MercatoClient(SERVER, "t", transport=StreamingTransport(handler)) as client:
        version = client.upload_version("hello-notes", path, progress=lambda sent, total: calls.append((sent, total)))

    assert version.status == "uploaded" and version.size == size
    assert seen["length_header"] == seen["length"]
    assert seen["largest"] <= CHUNK_SIZE and seen["chunks"] >= 6
    assert calls[0] == (0, size) and calls[-1] == (size, size)
    assert [sent for sent, _ in calls] == sorted(sent for sent, _ in calls)
    # the multipart body parses back into the sha256 field and the exact file
    boundary = str(seen["content_type"]).split("boundary=")[1]
    parts = bytes(seen["body"]).split(f"--{boundary}".encode())  # type: ignore[arg-type]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert b'name="sha256"\r\n\r\n' + digest.encode() + b"\r\n" in parts[1]
    head, payload = parts[2].split(b"\r\n\r\n", 1)
    assert b'name="file"; filename="hello-notes-1.0.0.tar.gz"' in head
    assert payload[:-2] == path.read_bytes()


def test_upload_reports_progress_only_as_the_transport_takes_the_bytes(tmp_path: Path) -> None:
    size = 3 * CHUNK_SIZE
    path = _package(tmp_path, size)
    order: list[str] = []
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        for chunk in request.stream:  # type: ignore[union-attr]
            order.append(f"sent {len(chunk)}")
        return httpx.Response(201, json={"id": "v1", "version": "1.0.0", "status": "uploaded"})

    def progress(sent: int, total: int) -> None:
        calls.append(sent)
        order.append(f"progress {sent}")

    with MercatoClient(SERVER, "t", transport=StreamingTransport(handler)) as client:
        client.upload_version("hello-notes", path, progress=progress)
    # each progress report follows the chunk it counts
    assert order.index(f"progress {CHUNK_SIZE}") > order.index(f"sent {CHUNK_SIZE}")
    assert calls[-1] == size


def test_an_upload_refused_by_the_store_is_an_api_error(tmp_path: Path) -> None:
    path = _package(tmp_path, 1000)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(413, json={"code": "package_too_large", "title": "Package too large", "status": 413,
                                         "detail": "The package is 1,000 bytes; this store accepts at most 10."})

    with _client(handler) as client, pytest.raises(ApiError) as caught:
        client.upload_version("hello-notes", path)
    assert caught.value.status == 413 and caught.value.code == "package_too_large"


def test_uploading_a_missing_file_is_a_client_error(tmp_path: Path) -> None:
    with _client(lambda r: httpx.Response(500)) as client, pytest.raises(ClientError, match="cannot read"):
        client.upload_version("hello-notes", tmp_path / "missing.tar.gz")


def test_a_download_whose_bytes_differ_from_the_declared_checksum_is_discarded(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"tampered", headers={"X-Checksum-SHA256": "0" * 64,
                                                                 "X-Signature-Ed25519": "c2ln"})

    with _client(handler) as client, pytest.raises(ChecksumMismatch, match="checksum_mismatch"):
        client.download_version("hello-notes", "1.0.0", tmp_path / "out.tar.gz")
    assert list(tmp_path.iterdir()) == []


def test_a_download_into_a_folder_takes_the_stores_file_name_safely(tmp_path: Path) -> None:
    payload = b"archive bytes" * 1000

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=payload, headers={
            "X-Checksum-SHA256": hashlib.sha256(payload).hexdigest(), "X-Signature-Ed25519": "c2ln",
            "X-Signature-Key-Id": "k1", "Content-Disposition": 'attachment; filename="../../evil/hello-1.0.0.zip"'})

    calls: list[tuple[int, int]] = []
    with _client(handler) as client:
        result = client.download_version("hello", "1.0.0", tmp_path, progress=lambda d, t: calls.append((d, t)))
    assert result.path == tmp_path / "hello-1.0.0.zip"
    assert result.path.read_bytes() == payload and result.size == len(payload)
    assert (result.signature, result.key_id) == ("c2ln", "k1")
    assert calls[-1][0] == len(payload)


def test_credentials_are_saved_readable_only_by_the_owner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERCATO_CONFIG_DIR", str(tmp_path / "config"))
    path = credentials.save(credentials.Credentials(server="http://s", token="mrc_x", email="a@example.org"))
    assert path == tmp_path / "config" / "credentials.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text()) == {"server": "http://s", "token": "mrc_x", "email": "a@example.org"}
    assert credentials.resolve(None, None).token == "mrc_x"
    assert credentials.resolve(None, "mrc_other").token == "mrc_other"


def test_without_credentials_the_user_is_told_to_log_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERCATO_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ClientError, match="run `mercato login --server URL` first"):
        credentials.resolve(None, None)


def test_damaged_credentials_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERCATO_CONFIG_DIR", str(tmp_path))
    (tmp_path / "credentials.json").write_text("{not json")
    with pytest.raises(ClientError, match="is damaged"):
        credentials.resolve(None, None)


def test_field_problems_the_detail_already_names_are_not_repeated() -> None:
    problem = {"code": "manifest_invalid", "title": "The package manifest is not valid", "status": 422,
               "detail": "mercato.toml is not valid: package.nmae: Unknown key 'nmae'.",
               "errors": [{"loc": ["package", "nmae"], "msg": "Unknown key 'nmae'.", "type": "extra_forbidden"}]}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json=problem)

    with _client(handler) as client, pytest.raises(ApiError) as caught:
        client.me()
    assert str(caught.value) == "manifest_invalid: mercato.toml is not valid: package.nmae: Unknown key 'nmae'."


def _signed_download(tmp_path: Path, payload: bytes):  # type: ignore[no-untyped-def]
    from mercato.client import DownloadResult, PublicKey
    from mercato.kit.keys import StoreKeys

    keys = StoreKeys.from_seed(bytes(range(32)))
    digest = hashlib.sha256(payload).hexdigest()
    path = tmp_path / "a.tar.gz"
    path.write_bytes(payload)
    published = [PublicKey(id=k.id, algorithm=k.algorithm, public_key=k.public_key) for k in keys.public_keys()]
    return DownloadResult(path=path, sha256=digest, size=len(payload), signature=keys.sign_artifact(digest),
                          key_id=keys.key_id), published


def test_a_download_signed_by_the_store_verifies(tmp_path: Path) -> None:
    from mercato.client import verify_download

    result, keys = _signed_download(tmp_path, b"the archive")
    assert verify_download(result, keys).id == result.key_id


def test_a_signature_over_other_bytes_does_not_verify(tmp_path: Path) -> None:
    from dataclasses import replace

    from mercato.client import SignatureInvalid, verify_download

    result, keys = _signed_download(tmp_path, b"the archive")
    other = replace(result, sha256=hashlib.sha256(b"another archive").hexdigest())
    with pytest.raises(SignatureInvalid, match="signature_invalid"):
        verify_download(other, keys)


def test_a_signature_from_a_key_the_store_does_not_publish_is_refused(tmp_path: Path) -> None:
    from dataclasses import replace

    from mercato.client import SignatureInvalid, verify_download

    result, keys = _signed_download(tmp_path, b"the archive")
    with pytest.raises(SignatureInvalid, match="signature_unknown_key"):
        verify_download(replace(result, key_id="0000000000000000"), keys)
    with pytest.raises(SignatureInvalid, match="signature_missing"):
        verify_download(replace(result, signature=None), keys)
