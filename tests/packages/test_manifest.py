"""mercato.toml: every key of PACKAGE.md validated, unknown keys refused by name."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from mercato.packages.errors import ManifestInvalid
from mercato.packages.manifest import (
    Manifest,
    network_entry_parts,
    parse_manifest,
    path_problem,
    render_manifest,
)
from tests.packages import MANIFEST


def replaced(old: str, new: str) -> str:
    assert old in MANIFEST, old
    return MANIFEST.replace(old, new, 1)


def refusal(text: str | bytes) -> ManifestInvalid:
    with pytest.raises(ManifestInvalid) as caught:
        parse_manifest(text.encode() if isinstance(text, str) else text)
    assert caught.value.code == "manifest_invalid" and caught.value.status == 422
    return caught.value


def locs(error: ManifestInvalid) -> list[list[Any]]:
    assert error.errors is not None
    return [item["loc"] for item in error.errors]


def test_the_example_of_package_md_is_valid() -> None:
    manifest = parse_manifest(MANIFEST.encode())
    assert manifest.name == "hello-notes" and manifest.version == "1.4.0" and manifest.kind == "app"
    assert manifest.compatibility.platforms == ["linux-x64", "linux-arm64"]
    assert manifest.host_range.contains("2.5.0") and not manifest.host_range.contains("3.0.0")
    assert manifest.requirements.memory_mb == 256 and manifest.permissions.notifications is True
    assert manifest.dependencies == {"notes-sync-plugin": ">=1.0.0, <2.0.0"}
    assert manifest.config is not None and manifest.config.json_schema["required"] == ["workspace"]
    assert manifest.launch is not None and manifest.launch.entry == "bin/hello-notes"


def test_document_is_json_ready_and_keeps_toml_key_names() -> None:
    document = parse_manifest(MANIFEST.encode()).to_document()
    assert json.loads(json.dumps(document)) == document
    assert document["config"]["schema"]["type"] == "object"
    assert document["package"]["name"] == "hello-notes"
    assert document["launch"] == {"entry": "bin/hello-notes", "url": None}


def test_minimal_manifest_gets_defaults() -> None:
    manifest = parse_manifest(b'[package]\nname = "tiny-plugin"\nversion = "0.1.0"\nkind = "plugin"\n'
                              b'summary = "Tiny."\nlicense = "proprietary"\n')
    assert manifest.compatibility.platforms == ["any"] and manifest.host_range.is_any
    assert manifest.permissions.network == [] and manifest.launch is None and manifest.config is None


def test_unknown_table_is_named() -> None:
    error = refusal(MANIFEST + "\n[permisions]\nnetwork = []\n")
    assert locs(error) == [["permisions"]]
    assert error.errors is not None and "Unknown table [permisions]" in error.errors[0]["msg"]
    assert "permisions" in error.detail


def test_unknown_keys_are_each_named() -> None:
    error = refusal(replaced('kind = "app"', 'kind = "app"\nnmae = "x"\nicon = "x.png"'))
    assert sorted(locs(error)) == [["package", "icon"], ["package", "nmae"]]
    assert error.errors is not None and all(item["type"] == "extra_forbidden" for item in error.errors)


def test_unknown_key_in_nested_table_is_named() -> None:
    error = refusal(replaced("notifications = true", "notifications = true\ncamera = true"))
    assert locs(error) == [["permissions", "camera"]]


@pytest.mark.parametrize("old, new, loc", [
    ('name = "hello-notes"', 'name = "Hello-Notes"', ["package", "name"]),
    ('name = "hello-notes"', 'name = "-hello"', ["package", "name"]),
    ('name = "hello-notes"', 'name = "hello-"', ["package", "name"]),
    ('name = "hello-notes"', 'name = "h"', ["package", "name"]),
    ('name = "hello-notes"', 'name = "' + "a" * 65 + '"', ["package", "name"]),
    ('name = "hello-notes"', 'name = "hello_notes"', ["package", "name"]),
    ('name = "hello-notes"', 'name = "hello-notes\\n"', ["package", "name"]),
    ('version = "1.4.0"', 'version = "v1.4.0"', ["package", "version"]),
    ('version = "1.4.0"', 'version = "1.4"', ["package", "version"]),
    ('version = "1.4.0"', 'version = 1.4', ["package", "version"]),
    ('kind = "app"', 'kind = "service"', ["package", "kind"]),
    ('summary = "Notes that sync."', 'summary = "' + "x" * 141 + '"', ["package", "summary"]),
    ('summary = "Notes that sync."', 'summary = "  "', ["package", "summary"]),
    ('summary = "Notes that sync."', 'summary = "line\\nbreak"', ["package", "summary"]),
    ('license = "MIT"', 'license = ""', ["package", "license"]),
    ('license = "MIT"', 'license = "MIT; rm -rf /"', ["package", "license"]),
    ('license = "MIT"', 'license = "(MIT"', ["package", "license"]),
    ('homepage = "https://example.org/hello-notes"', 'homepage = "javascript:alert(1)"', ["package", "homepage"]),
    ('homepage = "https://example.org/hello-notes"', 'homepage = "ftp://example.org/"', ["package", "homepage"]),
    ('homepage = "https://example.org/hello-notes"', 'homepage = "https://"', ["package", "homepage"]),
    ('changelog = "CHANGELOG.md"', 'changelog = "../CHANGELOG.md"', ["package", "changelog"]),
    ('changelog = "CHANGELOG.md"', 'changelog = "/etc/passwd"', ["package", "changelog"]),
    ('host = ">=2.0.0, <3.0.0"', 'host = ">=2"', ["compatibility", "host"]),
    ('host = ">=2.0.0, <3.0.0"', 'host = "2.0.0 - 3.0.0"', ["compatibility", "host"]),
    ('platforms = ["linux-x64", "linux-arm64"]', 'platforms = ["linux-x86"]', ["compatibility", "platforms", 0]),
    ('platforms = ["linux-x64", "linux-arm64"]', 'platforms = ["any", "linux-x64"]', ["compatibility", "platforms"]),
    ('platforms = ["linux-x64", "linux-arm64"]', 'platforms = []', ["compatibility", "platforms"]),
    ('platforms = ["linux-x64", "linux-arm64"]', 'platforms = ["linux-x64", "linux-x64"]',
     ["compatibility", "platforms"]),
    ("memory_mb = 256", "memory_mb = -1", ["requirements", "memory_mb"]),
    ("memory_mb = 256", 'memory_mb = "256"', ["requirements", "memory_mb"]),
    ("memory_mb = 256", "memory_mb = true", ["requirements", "memory_mb"]),
    ("disk_mb = 40", "disk_mb = 40.5", ["requirements", "disk_mb"]),
    ('network = ["api.example.org:443"]', 'network = ["api.example.org:0"]', ["permissions", "network"]),
    ('network = ["api.example.org:443"]', 'network = ["api.example.org:70000"]', ["permissions", "network"]),
    ('network = ["api.example.org:443"]', 'network = ["https://api.example.org"]', ["permissions", "network"]),
    ('network = ["api.example.org:443"]', 'network = ["2001:db8::1"]', ["permissions", "network"]),
    ('network = ["api.example.org:443"]', 'network = ["bad_host:80"]', ["permissions", "network"]),
    ('network = ["api.example.org:443"]', 'network = ["example.org:9000-8000"]', ["permissions", "network"]),
    ('filesystem = ["data"]', 'filesystem = ["../home"]', ["permissions", "filesystem", 0]),
    ('filesystem = ["data"]', 'filesystem = ["/etc"]', ["permissions", "filesystem", 0]),
    ("notifications = true", 'notifications = "yes"', ["permissions", "notifications"]),
    ('"notes-sync-plugin" = ">=1.0.0, <2.0.0"', '"Notes_Sync" = ">=1.0.0"', ["dependencies"]),
    ('"notes-sync-plugin" = ">=1.0.0, <2.0.0"', '"notes-sync-plugin" = "latest"', ["dependencies"]),
    ('"notes-sync-plugin" = ">=1.0.0, <2.0.0"', '"hello-notes" = "*"', ["dependencies", "hello-notes"]),
    ('entry = "bin/hello-notes"', 'entry = "../../bin/sh"', ["launch", "entry"]),
    ('entry = "bin/hello-notes"', 'entry = "bin/hello-notes"\nurl = "http://{host}:{port}/"', ["launch"]),
    ('entry = "bin/hello-notes"', 'url = "http://{host}:{port}/{path}"', ["launch", "url"]),
    ('entry = "bin/hello-notes"', 'url = "file:///etc/passwd"', ["launch", "url"]),
    ('entry = "bin/hello-notes"', 'url = "http://{host}:{port/"', ["launch", "url"]),
])
def test_invalid_value_is_refused_at_its_key(old: str, new: str, loc: list[Any]) -> None:
    assert loc in locs(refusal(replaced(old, new)))


@pytest.mark.parametrize("network", [
    "api.example.org:443", "api.example.org", "*", "*:443", "*.example.org", "192.0.2.7:8080", "[2001:db8::1]:8443",
    "[2001:db8::1]", "example.org:8000-8100", "example.org:*", "localhost:5432",
])
def test_network_permission_forms(network: str) -> None:
    manifest = parse_manifest(replaced('network = ["api.example.org:443"]', f'network = ["{network}"]').encode())
    assert manifest.permissions.network == [network]
    assert network_entry_parts(network)[0]


def test_launch_url_template_with_host_and_port() -> None:
    manifest = parse_manifest(replaced('entry = "bin/hello-notes"', 'url = "https://{host}:{port}/app"').encode())
    assert manifest.launch is not None and manifest.launch.url == "https://{host}:{port}/app"


def test_app_needs_a_launch_table_but_a_plugin_does_not() -> None:
    without_launch = MANIFEST.split("[launch]")[0]
    assert ["launch"] in locs(refusal(without_launch))
    plugin = parse_manifest(without_launch.replace('kind = "app"', 'kind = "plugin"').encode())
    assert plugin.launch is None


def test_launch_table_needs_exactly_one_key() -> None:
    assert ["launch"] in locs(refusal(MANIFEST.replace('entry = "bin/hello-notes"', "")))


@pytest.mark.parametrize("schema, fragment", [
    ('{ type = "array" }', "describe an object"),
    ('{ properties = { a = { type = "string" } } }', "describe an object"),
    ('{ type = "object", properties = { a = { type = "strng" } } }', "not a valid JSON Schema"),
    ('{ type = "object", required = "workspace" }', "not a valid JSON Schema"),
    ('{ type = "object", properties = { a = { type = "string", minLength = -1 } } }', "not a valid JSON Schema"),
    ('{ type = "object", properties = { a = { default = 1979-05-27 } } }', "JSON can't represent"),
    ('{ type = "object", properties = { a = { maximum = inf } } }', "JSON can't represent"),
])
def test_config_schema_must_be_a_valid_json_schema_object(schema: str, fragment: str) -> None:
    text = re.sub(r"(?m)^schema = .*$", lambda _: f"schema = {schema}", MANIFEST)
    error = refusal(text)
    assert ["config", "schema"] in locs(error)
    assert error.errors is not None and fragment in error.errors[0]["msg"]


def test_config_needs_its_schema() -> None:
    text = re.sub(r"(?m)^schema = .*$", "", MANIFEST)
    assert ["config", "schema"] in locs(refusal(text))


def test_toml_syntax_error_reports_the_line() -> None:
    error = refusal(MANIFEST.replace('kind = "app"', "kind = app"))
    assert error.errors is not None and error.errors[0]["type"] == "toml_syntax"
    assert "line 4" in error.detail


def test_manifest_must_be_utf8_and_small() -> None:
    assert "UTF-8" in refusal(MANIFEST.encode("utf-16")).detail
    assert "KiB" in refusal(MANIFEST.encode() + b"#" * 300_000).detail


def test_byte_order_mark_is_accepted() -> None:
    assert parse_manifest(b"\xef\xbb\xbf" + MANIFEST.encode()).name == "hello-notes"


def test_deep_nesting_is_refused_not_crashing() -> None:
    refusal(MANIFEST + "\nx = " + "[" * 50_000 + "]" * 50_000 + "\n")
    refusal(MANIFEST.replace("[config]\nschema = {", "[config]\nschema = {x=" * 1 + "{a=" * 200 + "1"
                             + "}" * 200 + ", "))


def test_several_problems_are_all_reported() -> None:
    text = replaced('name = "hello-notes"', 'name = "X"').replace('version = "1.4.0"', 'version = "one"')
    error = refusal(text)
    assert ["package", "name"] in locs(error) and ["package", "version"] in locs(error)
    assert "package.name" in error.detail and "package.version" in error.detail


def test_render_manifest_round_trips() -> None:
    manifest = parse_manifest(MANIFEST.encode())
    text = render_manifest(manifest)
    assert parse_manifest(text.encode()) == manifest
    tricky = Manifest.model_validate({
        "package": {"name": "q-x", "version": "1.0.0-rc.1+b.2", "kind": "plugin",
                    "summary": 'Quotes " and \\ and é', "license": "Apache-2.0 OR MIT"},
        "config": {"schema": {"type": "object", "properties": {"a key": {"type": "number", "minimum": 0.5,
                                                                         "examples": [{"x": 1}], "enum": [],
                                                                         "description": "tab\there\nline\x01"}}}},
    })
    assert parse_manifest(render_manifest(tricky, comments=False).encode()) == tricky


@pytest.mark.parametrize("path, fragment", [
    ("", "empty"), ("a/../b", "'..'"), ("/abs", "absolute"), ("C:x", "drive"), ("a\\b", "backslash"),
    ("a//b", "empty segment"), ("a/", "empty segment"), ("ab:c", "':'"), ("a\x00b", "NUL"), ("a\x7fb", "U+007F"),
    ("a\u2028b", "U+2028"), ("a\ufeffb", "U+FEFF"), ("trailing ", "ends with"), ("x" * 256, "255 bytes"),
    ("/".join(["a"] * 600), "1024"), ("\uff0e\uff0e/x", "normalisation"),
])
def test_path_problem_explains_unsafe_paths(path: str, fragment: str) -> None:
    problem = path_problem(path)
    assert problem is not None and fragment in problem


@pytest.mark.parametrize("path", ["a", "bin/hello-notes", ".env", "data/café.txt", "日本語/ファイル.txt",
                                  "a b/c d.txt", "x" * 255])
def test_path_problem_accepts_ordinary_paths(path: str) -> None:
    assert path_problem(path) is None


def test_an_integer_longer_than_python_converts_is_a_422_not_a_crash() -> None:
    """Issue 11 item 7: tomllib raises a bare ValueError past sys.get_int_max_str_digits()."""
    error = refusal(replaced("memory_mb = 256", "memory_mb = " + "9" * 5000))
    assert "too large" in error.detail
