"""HTTP plumbing (API.md "Conventions"; QUALITY I6): every error is problem JSON with a
request id, body limits and content types, hostile JSON and unicode, metrics and health."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.actors import DEFAULT_PASSWORD, Actor

PROBLEM_FIELDS = {"type", "title", "status", "detail", "code", "request_id"}
JSON = {"Content-Type": "application/json"}


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == "application/problem+json", response.headers
    problem = response.json()
    assert PROBLEM_FIELDS <= set(problem), problem
    assert problem["status"] == status
    assert isinstance(problem["title"], str) and problem["title"]
    assert isinstance(problem["detail"], str) and problem["detail"]
    assert re.fullmatch(r"[a-z][a-z0-9_]*", problem["code"]), problem["code"]
    assert problem["type"].endswith("/" + problem["code"])
    assert problem["request_id"] == response.headers["x-request-id"]
    if code is not None:
        assert problem["code"] == code, problem
    return problem  # type: ignore[no-any-return]


def error_fields(problem: dict[str, Any]) -> list[list[Any]]:
    assert isinstance(problem.get("errors"), list) and problem["errors"], problem
    for error in problem["errors"]:
        assert set(error) >= {"loc", "msg", "type"}, error
        assert isinstance(error["loc"], list)
    return [error["loc"] for error in problem["errors"]]


# --- the problem shape and request ids ------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "kwargs", "status", "code"), [
    ("POST", "/api/v1/auth/login", {"content": b"{not json", "headers": JSON}, 400, "malformed_body"),
    ("GET", "/api/v1/me", {}, 401, "unauthenticated"),
    ("GET", "/api/v1/me", {"headers": {"Authorization": "Bearer not-a-token"}}, 401, "unauthenticated"),
    ("GET", "/api/v1/no-such-route", {}, 404, "not_found"),
    ("GET", "/api/v1/no-such-page/at/all", {}, 404, "not_found"),  # outside /api a 404 is a page (tests/web)
    ("GET", "/api/v1/publishers/no-such-publisher", {}, 404, "publisher_not_found"),
    ("DELETE", "/api/v1/me", {}, 405, "method_not_allowed"),
    ("PUT", "/api/v1/auth/login", {"json": {}}, 405, "method_not_allowed"),
    ("POST", "/api/v1/auth/login", {"content": b"email=a", "headers": {"Content-Type": "text/plain"}}, 415,
     "unsupported_media_type"),
    ("POST", "/api/v1/auth/login", {"json": {"email": "a@example.org"}}, 422, "validation_failed"),
])
async def test_every_error_is_problem_json(client: httpx.AsyncClient, method: str, path: str,
                                           kwargs: dict[str, Any], status: int, code: str) -> None:
    response = await client.request(method, path, **kwargs)
    assert_problem(response, status, code)
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


async def test_405_names_the_allowed_methods(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/v1/me")
    assert_problem(response, 405)
    assert "GET" in response.headers.get("allow", "")


async def test_401_says_how_to_authenticate(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/me")
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].lower().startswith("bearer")


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/me", "/api/v1/nowhere"])
async def test_request_id_is_echoed_when_sent(client: httpx.AsyncClient, path: str) -> None:
    request_id = f"client-{uuid.uuid4()}"
    response = await client.get(path, headers={"X-Request-ID": request_id})
    assert response.headers["x-request-id"] == request_id
    if response.status_code >= 400:
        assert response.json()["request_id"] == request_id


async def test_an_invalid_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    for offered in ("", "has spaces", "x" * 65, "semi;colon", "ünïcode", "a\tb", "<script>"):
        response = await client.get("/api/v1/me", headers=[(b"X-Request-ID", offered.encode())])
        generated = response.headers["x-request-id"]
        assert generated != offered and re.fullmatch(r"[0-9a-f]{32}", generated), offered
        assert response.json()["request_id"] == generated


async def test_every_response_has_a_fresh_request_id(client: httpx.AsyncClient) -> None:
    ids = {(await client.get("/healthz")).headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


async def test_a_request_id_also_comes_on_early_rejections(client: httpx.AsyncClient) -> None:
    too_large = await client.post("/api/v1/auth/login", content=b"{}",
                                  headers={**JSON, "Content-Length": "99999999999", "X-Request-ID": "rid-413"})
    assert too_large.headers["x-request-id"] == "rid-413"
    assert_problem(too_large, 413, "payload_too_large")


# --- bodies ---------------------------------------------------------------------------------------

async def test_malformed_json_is_a_400(client: httpx.AsyncClient) -> None:
    for body in (b"{", b"{\"email\": }", b"[1, 2", b"\xff\xfe\x00", b"nul\x00", b"{\"a\": 1} trailing",
                 b"{'single': 'quotes'}", b"\"unterminated", b"{\"a\": \"\\x\"}"):
        response = await client.post("/api/v1/auth/login", content=body, headers=JSON)
        assert response.status_code == 400, (body, response.text)
        assert_problem(response, 400, "malformed_body")


async def test_wrong_types_are_422_naming_the_fields(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/register", json={"email": 5, "password": ["x"], "display_name": {}})
    problem = assert_problem(response, 422, "validation_failed")
    locs = error_fields(problem)
    assert ["body", "email"] in locs and ["body", "password"] in locs and ["body", "display_name"] in locs
    for error in problem["errors"]:
        assert "input" not in error  # the offending values are not echoed back


async def test_a_body_that_is_not_an_object_is_422(client: httpx.AsyncClient) -> None:
    for body in ([], "text", 1, None):
        response = await client.post("/api/v1/auth/login", content=json.dumps(body), headers=JSON)
        assert response.status_code == 422, (body, response.text)
        assert_problem(response, 422, "validation_failed")


async def test_unknown_fields_on_write_models_are_refused(client: httpx.AsyncClient, user: Actor) -> None:
    response = await client.patch("/api/v1/me", headers=user.headers,
                                  json={"display_name": "New name", "roles": ["super_admin"]})
    problem = assert_problem(response, 422, "validation_failed")
    assert ["body", "roles"] in error_fields(problem)
    me = await client.get("/api/v1/me", headers=user.headers)
    assert me.json()["display_name"] != "New name"  # nothing applied
    assert "super_admin" not in me.json()["roles"]
    apply = await client.post("/api/v1/publisher-applications", headers=user.headers,
                              json={"slug": "some-slug", "name": "Some name", "status": "approved"})
    assert ["body", "status"] in error_fields(assert_problem(apply, 422, "validation_failed"))


async def test_a_body_over_the_limit_with_content_length_is_413(client: httpx.AsyncClient, settings) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps({"email": "a@example.org", "password": "x" * settings.max_body_bytes}).encode()
    response = await client.post("/api/v1/auth/login", content=body, headers=JSON)
    assert_problem(response, 413, "payload_too_large")


async def test_a_streamed_body_over_the_limit_without_content_length_is_413(client: httpx.AsyncClient,  # type: ignore[no-untyped-def]
                                                                            settings) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"email": "a@example.org", "password": "'
        for _ in range(settings.max_body_bytes // 65536 + 2):
            sent += 65536
            yield b"x" * 65536
        yield b'"}'

    request = client.build_request("POST", "/api/v1/auth/login", content=chunks(), headers=JSON)
    assert "content-length" not in request.headers and request.headers["transfer-encoding"] == "chunked"
    response = await client.send(request)
    assert_problem(response, 413, "payload_too_large")


async def test_a_streamed_body_within_the_limit_is_fine(client: httpx.AsyncClient, user: Actor) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"email": "' + user.email.encode()
        yield b'", "password": "' + DEFAULT_PASSWORD.encode() + b'"}'

    response = await client.post("/api/v1/auth/login", content=chunks(), headers=JSON)
    assert response.status_code == 200, response.text


async def test_a_bad_content_length_is_400(client: httpx.AsyncClient) -> None:
    for value in ("not-a-number", "-1", "1e3", " "):
        response = await client.post("/api/v1/auth/login", content=b"{}", headers={**JSON, "Content-Length": value})
        assert response.status_code == 400, (value, response.text)
        assert_problem(response, 400)


async def test_a_wrong_content_type_is_415(client: httpx.AsyncClient, user: Actor) -> None:
    body = b'{"email": "a@example.org", "password": "x"}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                         "application/xml", "application/jsonx", "json", None):
        headers = {"Content-Type": content_type} if content_type else {}
        response = await client.post("/api/v1/auth/login", content=body, headers=headers)
        assert response.status_code == 415, (content_type, response.text)
        assert_problem(response, 415, "unsupported_media_type")
    patch = await client.patch("/api/v1/me", content=b"display_name=x", headers={
        **user.headers, "Content-Type": "application/x-www-form-urlencoded"})
    assert_problem(patch, 415, "unsupported_media_type")


async def test_json_content_types_with_parameters_are_accepted(client: httpx.AsyncClient) -> None:
    for content_type in ("application/json; charset=utf-8", "APPLICATION/JSON", "application/merge-patch+json"):
        response = await client.post("/api/v1/auth/login", content=b'{"email": "a@example.org", "password": "x"}',
                                     headers={"Content-Type": content_type})
        assert response.status_code == 401, (content_type, response.text)  # reached the handler: wrong password


# --- hostile JSON and unicode (I6): 4xx, never 500 ------------------------------------------------

def _nested(depth: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


async def test_deeply_nested_json_is_a_400(client: httpx.AsyncClient, user: Actor) -> None:
    for depth in (10_000, 100_000):
        for kind in ("list", "object"):
            body = _nested(depth, kind)
            assert_problem(await client.post("/api/v1/auth/login", content=body, headers=JSON), 400, "malformed_body")
            inside = b'{"slug": "deep-slug", "name": "Deep", "description": ' + body + b"}"
            response = await client.post("/api/v1/publisher-applications", content=inside,
                                         headers={**JSON, **user.headers, "Idempotency-Key": f"deep-{depth}-{kind}"})
            assert_problem(response, 400, "malformed_body")


async def test_nesting_around_the_parser_limit_is_never_a_500(client: httpx.AsyncClient, user: Actor) -> None:
    """Depths where the JSON parser just succeeds or just fails, through every layer (the
    idempotency fingerprint re-parses the body deeper in the stack)."""
    for depth in range(900, 1020, 6):
        for kind in ("list", "object"):
            body = b'{"slug": "deep-slug", "name": "Deep", "description": ' + _nested(depth, kind) + b"}"
            response = await client.post("/api/v1/publisher-applications", content=body,
                                         headers={**JSON, **user.headers, "Idempotency-Key": f"k-{depth}-{kind}"})
            assert response.status_code in (400, 422), (depth, kind, response.text)
            assert_problem(response, response.status_code)


async def test_huge_flat_json_within_the_limit_is_a_422(client: httpx.AsyncClient, settings) -> None:  # type: ignore[no-untyped-def]
    count = settings.max_body_bytes // 8
    body = b"[" + b",".join(b"1" for _ in range(count)) + b"]"
    assert len(body) < settings.max_body_bytes
    assert_problem(await client.post("/api/v1/auth/login", content=body, headers=JSON), 422)
    many_keys = json.dumps({f"k{i}": i for i in range(20_000)}).encode()
    response = await client.post("/api/v1/auth/login", content=many_keys, headers=JSON)
    problem = assert_problem(response, 422, "validation_failed")
    assert len(json.dumps(problem)) < 10 * len(many_keys)


ODD_STRINGS = [
    "nul\u0000byte",
    "\u0000",
    "rtl\u202eoverride\u202c",
    "zero\u200bwidth\ufeff",
    "combining e\u0301\u0301\u0301\u0301",
    "emoji \U0001f600\U0001f3f3\ufe0f\u200d\U0001f308",
    "\uffff\ufffe",
    "line\u2028sep\u2029",
    "x" * 10_000,
]
ESCAPED_SURROGATES = ['"\\ud800"', '"\\udfff"', '"a\\udc00b"', '"\\ud83d"', '"\\udc00\\ud800"']


def _escaped(value: str) -> str:
    return json.dumps(value)  # \u0000 and friends escaped, as a client would send them


async def test_odd_unicode_in_fields_is_never_a_500(client: httpx.AsyncClient, user: Actor) -> None:
    for odd in (*(_escaped(s) for s in ODD_STRINGS), *ESCAPED_SURROGATES):
        await _send_odd(client, user, odd)
    # The account still works.
    assert (await client.get("/api/v1/me", headers=user.headers)).status_code == 200


async def _send_odd(client: httpx.AsyncClient, user: Actor, odd: str) -> None:
    requests: list[tuple[str, str, str, dict[str, str]]] = [
        ("POST", "/api/v1/auth/register", f'{{"email": "odd-{uuid.uuid4().hex[:6]}@example.org", '
                                          f'"password": {odd}, "display_name": {odd}}}', {}),
        ("POST", "/api/v1/auth/register", f'{{"email": {odd}, "password": "{DEFAULT_PASSWORD}"}}', {}),
        ("POST", "/api/v1/auth/login", f'{{"email": {odd}, "password": {odd}}}', {}),
        ("POST", "/api/v1/auth/login", f'{{"email": "{user.email}", "password": {odd}}}', {}),
        ("POST", "/api/v1/auth/refresh", f'{{"refresh_token": {odd}}}', {}),
        ("PATCH", "/api/v1/me", f'{{"display_name": {odd}}}', user.headers),
        ("POST", "/api/v1/me/tokens", f'{{"name": {odd}, "scopes": [{odd}]}}', user.headers),
        ("POST", "/api/v1/publisher-applications", f'{{"slug": {odd}, "name": "Name"}}', user.headers),
        ("POST", "/api/v1/publisher-applications",
         f'{{"slug": "odd-{uuid.uuid4().hex[:6]}", "name": {odd}, "description": {odd}}}',
         {**user.headers, "Idempotency-Key": f"odd-{uuid.uuid4()}"}),
    ]
    for method, path, body, headers in requests:
        response = await client.request(method, path, content=body.encode(), headers={**JSON, **headers})
        assert response.status_code < 500, (method, path, body[:80], response.text)
        if response.status_code >= 400:
            assert_problem(response, response.status_code)


async def test_odd_paths_and_queries_are_never_a_500(client: httpx.AsyncClient, admin: Actor) -> None:
    for odd in ("\u0000", "%00", "\u202e", "\ud800", "..", "%2e%2e%2f", "a" * 5000, "-1", "99999999999999999999999"):
        await _get_odd(client, admin, odd)


async def _get_odd(client: httpx.AsyncClient, admin: Actor, odd: str) -> None:
    from urllib.parse import quote

    quoted = quote(odd.encode("utf-8", "surrogatepass"), safe="%")
    for path in (f"/api/v1/publishers/{quoted}", f"/api/v1/admin/users?q={quoted}",
                 f"/api/v1/admin/users?cursor={quoted}", f"/api/v1/admin/audit?actor={quoted}",
                 f"/api/v1/admin/audit?action={quoted}", f"/api/v1/admin/audit?resource={quoted}:{quoted}",
                 f"/api/v1/admin/audit?since={quoted}", f"/api/v1/admin/audit?cursor={quoted}",
                 f"/api/v1/admin/publisher-applications?status={quoted}", f"/api/v1/me/tokens/{quoted}",
                 f"/api/v1/admin/users?limit={quoted}"):
        response = await client.get(path, headers=admin.headers)
        assert response.status_code < 500, (path, response.text)
    response = await client.delete(f"/api/v1/publishers/some-pub/members?email={quoted}", headers=admin.headers)
    assert response.status_code < 500, response.text


async def test_timestamps_at_the_edge_of_the_calendar_are_422(client: httpx.AsyncClient, admin: Actor) -> None:
    """Valid RFC 3339 values that leave the representable range when converted to UTC."""
    for query in ("since=0001-01-01T00:00:00%2B01:00", "until=9999-12-31T23:59:59-01:00",
                  "since=0001-01-01T00:00:00%2B23:59&until=9999-12-31T23:59:59-23:59"):
        response = await client.get(f"/api/v1/admin/audit?{query}", headers=admin.headers)
        assert_problem(response, 422, "validation_failed")
    for query in ("since=0001-01-01T01:00:00%2B01:00", "until=9999-12-31T23:59:59Z", "since=1970-01-01T00:00:00Z"):
        response = await client.get(f"/api/v1/admin/audit?{query}", headers=admin.headers)
        assert response.status_code == 200, (query, response.text)


async def test_csv_export_refuses_bad_filters_before_streaming(client: httpx.AsyncClient, admin: Actor) -> None:
    for query in ("since=0001-01-01T00:00:00%2B01:00", "action=%00"):
        response = await client.get(f"/api/v1/admin/audit?format=csv&{query}", headers=admin.headers)
        assert response.status_code == 422, response.text


async def test_odd_authorization_headers_are_401(client: httpx.AsyncClient) -> None:
    for value in ("\u00ff\u00fe", "Bearer \u00e9\u00e9", "Bearer " + "a" * 8000, "Bearer a.b.c", "Basic dXNlcjpwYXNz",
                  "Bearer", "bearer  ", "Bearer mct_" + "x" * 40, "Bearer eyJhbGciOiJub25lIn0.e30.", "Bearer \x00"):
        response = await client.get("/api/v1/me", headers=[(b"Authorization", value.encode("latin-1"))])
        assert response.status_code == 401, (value, response.text)
        assert_problem(response, 401)


async def test_odd_idempotency_keys(client: httpx.AsyncClient, actors) -> None:  # type: ignore[no-untyped-def]
    for key, status in (("\u00e9t\u00e9", 201), ("key with spaces", 201), ("k" * 255, 201), ("k" * 256, 400),
                        ("tab\tkey", 400), ("\x7f", 400)):
        applicant = await actors.create()  # one pending application each
        response = await client.post("/api/v1/publisher-applications", headers=[
            *applicant.headers.items(), ("Content-Type", "application/json"),
            ("Idempotency-Key", key.encode("latin-1"))],
            json={"slug": f"k-{uuid.uuid4().hex[:8]}", "name": "Keyed"})
        assert response.status_code == status, (key, response.text)


# --- metrics and health ---------------------------------------------------------------------------

def _samples(text: str, name: str) -> dict[tuple[str, str, str], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[(sample.labels["route"], sample.labels["method"], sample.labels["status"])] = sample.value
    return out


async def test_metrics_count_requests_by_route_template_and_errors(client: httpx.AsyncClient, user: Actor) -> None:
    before = (await client.get("/metrics")).text
    assert (await client.get("/api/v1/me", headers=user.headers)).status_code == 200
    assert (await client.get("/api/v1/me")).status_code == 401
    assert (await client.get("/api/v1/publishers/no-such-pub")).status_code == 404
    assert (await client.get("/api/v1/publishers/other-missing-pub")).status_code == 404
    assert (await client.post("/api/v1/auth/login", content=b"x", headers={"Content-Type": "text/plain"})
            ).status_code == 415
    assert (await client.get(f"/api/v1/nothing-{uuid.uuid4().hex}")).status_code == 404
    response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    after = response.text

    def delta(name: str, key: tuple[str, str, str]) -> float:
        return _samples(after, name).get(key, 0.0) - _samples(before, name).get(key, 0.0)

    requests, errors = "mercato_http_requests_total", "mercato_http_errors_total"
    assert delta(requests, ("/api/v1/me", "GET", "200")) == 1
    assert delta(requests, ("/api/v1/me", "GET", "401")) == 1
    assert delta(errors, ("/api/v1/me", "GET", "401")) == 1
    assert delta(errors, ("/api/v1/me", "GET", "200")) == 0
    # One series per template, not per slug.
    assert delta(requests, ("/api/v1/publishers/{slug}", "GET", "404")) == 2
    assert delta(errors, ("/api/v1/publishers/{slug}", "GET", "404")) == 2
    assert not any("no-such-pub" in route for route, _, _ in _samples(after, requests))
    # Requests refused before routing are still counted under their template.
    assert delta(errors, ("/api/v1/auth/login", "POST", "415")) == 1
    # Unknown paths share one label.
    assert delta(requests, ("<unmatched>", "GET", "404")) >= 1
    assert not any(route.startswith("/api/v1/nothing-") for route, _, _ in _samples(after, requests))
    assert "mercato_http_request_duration_seconds_bucket" in after


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert health.headers["x-request-id"]
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "migrations": "ok"}}


async def test_an_exhausted_connection_pool_is_a_503_with_retry_after(
        client: httpx.AsyncClient, runtime, user: Actor) -> None:  # type: ignore[no-untyped-def]
    """Overload (every pooled connection busy for the pool's whole timeout) is a 503 the
    client can retry after, never a 500 (QUALITY F9; the PERF-5 flash sale found it)."""
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
    from sqlalchemy.pool import AsyncAdaptedQueuePool

    tiny = create_async_engine(runtime.db.url, poolclass=AsyncAdaptedQueuePool, pool_size=1, max_overflow=0,
                               pool_timeout=0.2)
    normal = runtime.db._read_sessions
    runtime.db._read_sessions = async_sessionmaker(tiny, expire_on_commit=False)
    try:
        async with tiny.connect():  # the pool's only connection, held
            busy = await client.get("/api/v1/me", headers=user.headers)
        problem = assert_problem(busy, 503, "service_unavailable")
        assert busy.headers["retry-after"] == "2" and "busy" in problem["detail"]
    finally:
        runtime.db._read_sessions = normal
        await tiny.dispose()
    assert (await client.get("/api/v1/me", headers=user.headers)).status_code == 200


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"], ids=["deadlock", "serialization"])
@pytest.mark.own_app
async def test_a_transaction_the_database_rolled_back_is_a_503_to_retry(
        app, client: httpx.AsyncClient, sqlstate: str) -> None:  # type: ignore[no-untyped-def]
    """A deadlock victim or a serialization failure changed nothing and will pass when
    repeated: a 503 with Retry-After, never a 500 (found as a PostgreSQL deadlock between a
    refund settlement and concurrent postings to the same accounts)."""
    from sqlalchemy.exc import DBAPIError

    class Orig(Exception):
        pass

    orig = Orig("deadlock detected")
    orig.sqlstate = sqlstate  # type: ignore[attr-defined]

    async def conflicting() -> None:
        raise DBAPIError("UPDATE ledger_accounts …", {}, orig)

    app.add_api_route(f"/api/v1/test-rollback-{sqlstate}", conflicting)
    response = await client.get(f"/api/v1/test-rollback-{sqlstate}")
    assert_problem(response, 503, "service_unavailable")
    assert response.headers["retry-after"] == "1"


async def test_numbers_longer_than_python_converts_are_refused_cleanly(client: httpx.AsyncClient) -> None:
    """Issue 11 item 7: int() of a 5000-digit header value raised ValueError (a 500)."""
    huge = "9" * 5000
    response = await client.post("/api/v1/auth/login", content=b"{}", headers={**JSON, "Content-Length": huge})
    assert_problem(response, 413, "payload_too_large")
