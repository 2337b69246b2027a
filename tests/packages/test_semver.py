"""SemVer 2.0 versions, precedence, ranges and the database ordering key."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mercato.kit.semver import (
    MAX_VERSION_LENGTH,
    ORDERING_KEY_MAX_LENGTH,
    latest,
    ordering_key,
    parse_range,
    parse_version,
    version_sort_key,
)

# The precedence example of semver.org, in order.
SPEC_ORDER = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
              "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "1.10.0", "2.0.0-0", "2.0.0"]


@pytest.mark.parametrize("text", ["0.0.0", "1.4.0", "10.20.30", "1.0.0-rc.1", "1.0.0-0A.is.legal",
                                  "1.0.0+build.5", "1.0.0-alpha+001", "999999999.999999999.999999999"])
def test_valid_versions_parse(text: str) -> None:
    assert str(parse_version(text)) == text


@pytest.mark.parametrize("text", ["", "1", "1.2", "1.2.3.4", "01.2.3", "1.02.3", "1.2.3-01", "1.2.3-", "1.2.3+",
                                  "1.2.3-a..b", " 1.2.3", "1.2.3 ", "1.2.3\n", "latest", "1.2.3-é",
                                  "1.0.0-" + "a" * 59])
def test_invalid_versions_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_version(text)


def test_leading_v_is_refused_with_a_hint() -> None:
    with pytest.raises(ValueError, match="drop the leading 'v'"):
        parse_version("v1.2.3")


def test_precedence_follows_the_specification() -> None:
    shuffled = SPEC_ORDER[:]
    random.Random(7).shuffle(shuffled)
    assert sorted(shuffled, key=version_sort_key) == SPEC_ORDER


def test_build_metadata_is_ignored_for_precedence() -> None:
    assert version_sort_key("1.0.0+a") == version_sort_key("1.0.0+b") == version_sort_key("1.0.0")
    assert ordering_key("1.0.0+a") == ordering_key("1.0.0")


def test_latest() -> None:
    assert latest(["1.0.0", "1.10.0", "1.9.0", "1.10.0-rc.1"]) == "1.10.0"
    assert latest(["0.1.0-alpha", "0.1.0-alpha.1"]) == "0.1.0-alpha.1"
    assert latest([]) is None
    with pytest.raises(ValueError):
        latest(["1.0.0", "nope"])


@pytest.mark.parametrize("text, inside, outside", [
    (">=2.0.0, <3.0.0", ["2.0.0", "2.9.9", "3.0.0-rc.1"], ["1.9.9", "3.0.0"]),
    (">1.0.0", ["1.0.1", "1.0.1-0"], ["1.0.0", "1.0.0+build"]),
    ("<=1.4.0", ["1.4.0", "1.4.0+b"], ["1.4.1"]),
    ("=1.2.3", ["1.2.3", "1.2.3+x"], ["1.2.4", "1.2.3-rc"]),
    ("==1.2.3", ["1.2.3"], ["1.2.2"]),
    ("1.2.3", ["1.2.3"], ["1.2.2"]),
    ("!=1.3.0", ["1.2.0", "1.4.0"], ["1.3.0"]),
    ("^1.2.3", ["1.2.3", "1.9.0"], ["1.2.2", "2.0.0", "2.0.0-rc.1"]),
    ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0", "0.3.0-alpha", "0.2.2"]),
    ("^0.0.3", ["0.0.3"], ["0.0.4", "0.0.2"]),
    ("~1.2.3", ["1.2.3", "1.2.9"], ["1.3.0", "1.3.0-0", "1.2.2"]),
    ("*", ["0.0.0", "99.0.0-x"], []),
    ("", ["1.0.0"], []),
    ("  >= 1.0.0 ,< 2.0.0 ", ["1.5.0"], ["2.0.0"]),
    (">=1.0.0-rc.1, !=1.0.0, <1.1.0", ["1.0.0-rc.2", "1.0.1"], ["1.0.0", "1.0.0-rc.0"]),
])
def test_range_membership(text: str, inside: list[str], outside: list[str]) -> None:
    version_range = parse_range(text)
    assert all(version_range.contains(v) for v in inside), [v for v in inside if not version_range.contains(v)]
    assert not any(version_range.contains(v) for v in outside), [v for v in outside if version_range.contains(v)]


@pytest.mark.parametrize("text", [">=2", ">= 2.0", "=>1.0.0", ">>1.0.0", "1.0.0 2.0.0", ">=1.0.0,", ",<2.0.0",
                                  "1.0.0 - 2.0.0", "^v1.0.0", "latest", "~>1.0.0", "x" * 600])
def test_invalid_ranges_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_range(text)


def test_range_contains_refuses_bad_versions_and_prints_normalised() -> None:
    version_range = parse_range("^1.2.3")
    with pytest.raises(ValueError):
        version_range.contains("1.2")
    assert "1.5.0" in version_range and "nonsense" not in version_range
    assert str(version_range) == ">=1.2.3, <2.0.0-0"
    assert str(parse_range("*")) == "*" and parse_range("*").is_any


def test_ordering_key_examples() -> None:
    assert ordering_key("1.4.0") == "000000001.000000004.000000000~"
    assert ordering_key("1.4.0-rc.1") == "000000001.000000004.000000000-1rc!011!"
    assert len(ordering_key("0.0.1")) == 30


def test_ordering_key_sorts_the_specification_example() -> None:
    keys = [ordering_key(v) for v in SPEC_ORDER]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert [k.encode() for k in keys] == sorted(k.encode() for k in keys)


def test_ordering_key_refuses_numbers_it_cannot_hold() -> None:
    with pytest.raises(ValueError):
        ordering_key("1000000000.0.0")
    with pytest.raises(ValueError):
        ordering_key("1.0.0-rc.1000000000")


identifier = st.one_of(
    st.integers(min_value=0, max_value=10**9 - 1).map(str),
    st.text(alphabet="09azAZ-", min_size=1, max_size=8).filter(lambda s: not s.isdigit()),
)
versions = st.builds(
    lambda core, pre: ".".join(map(str, core)) + ("-" + ".".join(pre) if pre else ""),
    st.tuples(*[st.integers(min_value=0, max_value=3) | st.integers(min_value=0, max_value=10**9 - 1)] * 3),
    st.lists(identifier, max_size=4),
).filter(lambda text: len(text) <= MAX_VERSION_LENGTH)


@settings(max_examples=300, deadline=None)
@given(versions, versions)
def test_ordering_key_byte_order_is_precedence(a: str, b: str) -> None:
    key_a, key_b = ordering_key(a).encode(), ordering_key(b).encode()
    sort_a, sort_b = version_sort_key(a), version_sort_key(b)
    assert (key_a < key_b) == (sort_a < sort_b)
    assert (key_a == key_b) == (sort_a == sort_b)
    assert len(key_a) <= ORDERING_KEY_MAX_LENGTH


@settings(max_examples=200, deadline=None)
@given(versions, versions)
def test_sort_key_agrees_with_the_semver_package(a: str, b: str) -> None:
    expected = parse_version(a).compare(b)
    ours = (version_sort_key(a) > version_sort_key(b)) - (version_sort_key(a) < version_sort_key(b))
    assert ours == expected


def test_worst_case_ordering_key_fits_the_maximum() -> None:
    worst = "0.0.0-" + ".".join(["1"] * 29)
    assert len(worst) <= MAX_VERSION_LENGTH == 64
    assert len(ordering_key(worst)) <= ORDERING_KEY_MAX_LENGTH <= 200  # the versions.ordering column
