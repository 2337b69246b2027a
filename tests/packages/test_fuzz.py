"""QUALITY I8: fuzzing the archive and manifest parsers.

The only allowed outcomes are a valid result or a package error (a 4xx with a code), never
another exception. The CI run is short; the ``slow`` variants run five times as many cases.
"""

from __future__ import annotations

import itertools
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mercato.packages.archive import InspectedArchive, PackageLimits, inspect_archive
from mercato.packages.errors import ManifestInvalid, PackageError
from mercato.packages.manifest import Manifest, parse_manifest
from tests.packages import MANIFEST, TarEntry, ZipEntry, gz, raw_tar, tar_bytes, valid_files, zip_bytes

LIMITS = PackageLimits(max_archive_bytes=1024 * 1024, max_unpacked_bytes=4 * 1024 * 1024, max_members=64,
                       bomb_threshold_bytes=64 * 1024, max_ratio=50)
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                database=None)
LONG = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                database=None)

SMALL_FILES = {"mercato.toml": MANIFEST.encode(), "CHANGELOG.md": b"# 1.4.0\n", "bin/hello-notes": b"#!/bin/sh\n"}
TAR = tar_bytes([TarEntry(n, d, mode=0o755) for n, d in SMALL_FILES.items()]
                + [TarEntry("data", type=b"5", mode=0o755), TarEntry("data/" + "é" * 60, b"long pax name")])
RAW_TAR = raw_tar([(n.encode(), d) for n, d in SMALL_FILES.items()])
SEEDS = {
    "zip": zip_bytes([ZipEntry(n.encode(), d) for n, d in SMALL_FILES.items()]
                     + [ZipEntry(b"data/", method=0, external_attr=(stat.S_IFDIR | 0o755) << 16)]),
    "zip-stored": zip_bytes([ZipEntry(n.encode(), d, method=0) for n, d in SMALL_FILES.items()]),
    "tar.gz": gz(TAR),
}
TAR_SEEDS = {"pax": TAR, "raw": RAW_TAR}
_counter = itertools.count()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _inspect(workdir: Path, data: bytes) -> None:
    path = workdir / f"case-{next(_counter)}"
    path.write_bytes(data)
    try:
        result = inspect_archive(path, limits=LIMITS)
    except PackageError as error:
        assert 400 <= error.status < 500 and error.code and error.detail
    else:
        assert isinstance(result, InspectedArchive) and isinstance(result.manifest, Manifest)
    finally:
        path.unlink()


def _parse(data: bytes) -> None:
    try:
        result = parse_manifest(data)
    except ManifestInvalid as error:
        assert error.status == 422 and error.errors
        for item in error.errors:
            assert set(item) == {"loc", "msg", "type"} and isinstance(item["loc"], list) and item["msg"]
    else:
        assert isinstance(result, Manifest)
        assert parse_manifest(data).to_document() == result.to_document()


# --- mutations ---------------------------------------------------------------------------

@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        if not data:
            break
        operation = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "duplicate", "zero"]))
        index = draw(st.integers(min_value=0, max_value=len(data) - 1))
        if operation == "flip":
            data[index] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif operation == "set":
            data[index] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, ord("/"), ord("."), ord("\\"), ord("5")]))
        elif operation == "truncate":
            del data[index:]
        elif operation == "insert":
            data[index:index] = draw(st.binary(min_size=1, max_size=32))
        elif operation == "delete":
            del data[index:index + draw(st.integers(min_value=1, max_value=64))]
        elif operation == "duplicate":
            data[index:index] = data[index:index + draw(st.integers(min_value=1, max_value=600))]
        else:
            data[index:index + 4] = bytes(len(data[index:index + 4]))
    return bytes(data)


archives = st.one_of(
    st.binary(max_size=2048),
    st.builds(lambda magic, rest: magic + rest, st.sampled_from([b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b\x08\x00"]),
              st.binary(max_size=2048)),
    st.sampled_from(sorted(SEEDS)).flatmap(lambda name: mutated(SEEDS[name])),
    # mutate the tar before compressing it, so the tar parser (not only gzip's CRC) sees the damage
    st.sampled_from(sorted(TAR_SEEDS)).flatmap(lambda name: mutated(TAR_SEEDS[name])).map(gz),
)

manifest_lines = MANIFEST.splitlines()
tokens = st.sampled_from(['"x"', "1", "-1", "true", "[]", "{}", '["*"]', '"../x"', '"1.0.0"', '">=1.0.0"',
                          '"any"', "1979-05-27", "inf", "nan", '"\\u0000"', '{ type = "object" }', "[[1]]", '""'])


@st.composite
def manifest_texts(draw: st.DrawFn) -> bytes:
    lines = list(manifest_lines)
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        index = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        operation = draw(st.sampled_from(["value", "delete", "duplicate", "key", "table", "text"]))
        if operation == "value" and " = " in lines[index]:
            lines[index] = lines[index].split(" = ", 1)[0] + " = " + draw(tokens)
        elif operation == "delete":
            del lines[index]
        elif operation == "duplicate":
            lines.insert(index, lines[index])
        elif operation == "key":
            key = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8))
            lines.insert(index, key + " = " + draw(tokens))
        elif operation == "table":
            lines.insert(index, "[" + draw(st.sampled_from(["package", "launch", "config", "extra", "a.b"])) + "]")
        else:
            lines.insert(index, draw(st.text(max_size=40)))
        if not lines:
            break
    return "\n".join(lines).encode("utf-8", "surrogatepass")


manifests = st.one_of(st.binary(max_size=512), st.text(max_size=512).map(lambda t: t.encode("utf-8", "surrogatepass")),
                      manifest_texts())


# --- the harness -------------------------------------------------------------------------

@FAST
@given(data=archives)
def test_inspect_archive_only_refuses_with_package_errors(workdir: Path, data: bytes) -> None:
    _inspect(workdir, data)


@FAST
@given(data=manifests)
def test_parse_manifest_only_refuses_with_manifest_invalid(data: bytes) -> None:
    _parse(data)


@pytest.mark.slow
@LONG
@given(data=archives)
def test_inspect_archive_fuzz_long(workdir: Path, data: bytes) -> None:
    _inspect(workdir, data)


@pytest.mark.slow
@LONG
@given(data=manifests)
def test_parse_manifest_fuzz_long(data: bytes) -> None:
    _parse(data)


def test_seeds_are_valid(workdir: Path) -> None:
    """The mutations start from archives that pass, so they explore near-valid inputs."""
    for name, seed in SEEDS.items():
        path = workdir / f"seed-{name}"
        path.write_bytes(seed)
        assert inspect_archive(path, limits=LIMITS).manifest.name == "hello-notes"
    assert parse_manifest(MANIFEST.encode()).name == "hello-notes"
    assert valid_files()
