"""Semantic Versioning 2.0 for package versions and the ranges that refer to them.

Versions are parsed by the ``semver`` package (exactly SemVer 2.0: no leading ``v``, no
leading zeros, no missing parts, no surrounding whitespace) and kept at most
:data:`MAX_VERSION_LENGTH` characters. Precedence follows the specification: build
metadata (``+...``) is ignored, a pre-release sorts before its release, pre-release
identifiers compare one by one (numbers numerically and before words, words in ASCII
order, a shorter list first when all before are equal).

Ranges (``[compatibility] host`` and ``[dependencies]`` values of a manifest) are
comparators joined by commas, all of which must hold::

    >=2.0.0, <3.0.0      >1.0.0       <=1.4.0      =1.2.3 (or ==1.2.3, or just 1.2.3)
    !=1.3.0              ^1.2.3       ~1.2.3       *  (or empty: any version)

Comparators take full versions (``1.2.3``, ``1.2.3-rc.1``). ``^1.2.3`` means
``>=1.2.3, <2.0.0-0`` (``^0.2.3``: ``<0.3.0-0``; ``^0.0.3``: ``<0.0.4-0``) and ``~1.2.3``
means ``>=1.2.3, <1.3.0-0``: their upper bounds exclude the pre-releases of the next
version. Other comparators compare by plain precedence, so ``<3.0.0`` admits
``3.0.0-rc.1``; write ``<3.0.0-0`` to exclude those too.

:func:`ordering_key` turns a version into a string whose byte order is its precedence,
so a database column (binary collation: ``COLLATE "C"`` on PostgreSQL, SQLite's default)
can ``ORDER BY`` it. The encoding, for numeric parts below 10^9:

- ``MAJOR.MINOR.PATCH`` as three 9-digit zero-padded numbers joined by ``.`` (29 characters);
- then ``~`` for a release, or ``-`` for a pre-release followed by each identifier and a
  ``!`` terminator: a numeric identifier as ``0``, its digit count (1-9) and its digits;
  an alphanumeric one as ``1`` and the identifier itself.

``!`` sorts below every identifier character (``-``, digits, letters), the prefixes ``0``
< ``1`` put numbers before words, the digit count orders numbers (SemVer forbids leading
zeros) and ``-`` < ``~`` puts pre-releases before their release. So releases have
exactly 30 characters (``1.4.0`` → ``000000001.000000004.000000000~``), and a pre-release
key is the fixed 30-character head plus its identifiers
(``1.4.0-rc.1`` → ``000000001.000000004.000000000-1rc!011!``), never longer than
:data:`ORDERING_KEY_MAX_LENGTH`. Build metadata is left out: versions differing only in
it share a key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import semver

Version = semver.Version

MAX_VERSION_LENGTH = 64  # fits a String(100) column; keys stay within 148 characters
MAX_RANGE_LENGTH = 512
MAX_COMPARATORS = 16
_KEY_NUMBER_LIMIT = 10**9
# head (29 + 1) + the worst pre-release: one-digit numbers, each "0" "1" digit "!" from "d."
ORDERING_KEY_MAX_LENGTH = 30 + 2 * (MAX_VERSION_LENGTH - len("0.0.0-")) + 2

SortKey = tuple[int, int, int, tuple[tuple[int, int | str], ...] | tuple[int]]


def parse_version(text: str) -> Version:
    """Parse a SemVer 2.0 version such as ``1.4.0``, ``2.0.0-rc.1`` or ``1.0.0+build.5``."""
    if not isinstance(text, str):
        raise ValueError(f"A version must be text such as 1.4.0, not {type(text).__name__}.")
    if not text:
        raise ValueError("The version is empty; write a SemVer version such as 1.4.0.")
    if len(text) > MAX_VERSION_LENGTH:
        raise ValueError(f"The version is longer than {MAX_VERSION_LENGTH} characters.")
    if text[0] in "vV" and len(text) > 1 and text[1].isdigit():
        raise ValueError(f"{text!r} is not a SemVer version: drop the leading {text[0]!r} ({text[1:]!r}).")
    if not text.isascii() or any(c.isspace() for c in text):
        raise ValueError(f"{text!r} is not a SemVer version: use only ASCII letters, digits, '.', '-' and '+'.")
    try:
        return Version.parse(text)
    except (ValueError, TypeError):
        raise ValueError(
            f"{text!r} is not a SemVer 2.0 version: write MAJOR.MINOR.PATCH with an optional "
            "-pre.release and +build (such as 1.4.0 or 2.0.0-rc.1), numbers without leading zeros."
        ) from None


def _key_of(version: Version) -> SortKey:
    if not version.prerelease:
        return (version.major, version.minor, version.patch, (1,))
    parts: list[tuple[int, int | str]] = []
    for identifier in version.prerelease.split("."):
        parts.append((0, int(identifier)) if identifier.isdigit() else (1, identifier))
    # A release sorts after its pre-releases: (0, ...) < (1,).
    return (version.major, version.minor, version.patch, (0, *parts))  # type: ignore[return-value]


def version_sort_key(text: str | Version) -> SortKey:
    """A tuple that orders versions by SemVer precedence (build metadata ignored)."""
    return _key_of(text if isinstance(text, Version) else parse_version(text))


def latest(versions: Iterable[str]) -> str | None:
    """The version of highest precedence, or None for none; the first of equals wins."""
    best: str | None = None
    best_key: SortKey | None = None
    for text in versions:
        key = version_sort_key(text)
        if best_key is None or key > best_key:
            best, best_key = text, key
    return best


def ordering_key(text: str | Version) -> str:
    """A string whose byte order equals SemVer precedence (see the module docstring)."""
    version = text if isinstance(text, Version) else parse_version(text)
    numbers = (version.major, version.minor, version.patch)
    if any(n >= _KEY_NUMBER_LIMIT for n in numbers):
        raise ValueError(f"{version} has a number of 10^9 or more, which the ordering key can't hold.")
    head = ".".join(f"{n:09d}" for n in numbers)
    if not version.prerelease:
        return head + "~"
    tail = []
    for identifier in version.prerelease.split("."):
        if identifier.isdigit():
            if int(identifier) >= _KEY_NUMBER_LIMIT:
                raise ValueError(f"{version} has a pre-release number of 10^9 or more, which the ordering key "
                                 "can't hold.")
            tail.append(f"0{len(identifier)}{identifier}!")
        else:
            tail.append(f"1{identifier}!")
    return head + "-" + "".join(tail)


# --- ranges ------------------------------------------------------------------------------

_COMPARATOR = re.compile(r"\s*(>=|<=|==|!=|>|<|=|\^|~)?\s*([^\s,]*)\s*")


@dataclass(frozen=True)
class Comparator:
    """One condition of a range: ``operator`` is one of ``>= > <= < = !=``."""

    operator: str
    version: Version

    def __str__(self) -> str:
        return f"{self.operator}{self.version}"

    def matches(self, key: SortKey) -> bool:
        bound = _key_of(self.version)
        return {
            ">=": key >= bound, ">": key > bound, "<=": key <= bound, "<": key < bound,
            "=": key == bound, "!=": key != bound,
        }[self.operator]


@dataclass(frozen=True)
class VersionRange:
    """Comparators that must all hold; no comparators means any version."""

    text: str
    comparators: tuple[Comparator, ...]

    @property
    def is_any(self) -> bool:
        return not self.comparators

    def contains(self, version: str | Version) -> bool:
        """Whether ``version`` satisfies every comparator (ValueError if it isn't SemVer)."""
        key = version_sort_key(version)
        return all(comparator.matches(key) for comparator in self.comparators)

    def __contains__(self, version: object) -> bool:
        """Like :meth:`contains`, but False (not ValueError) for something that is not a version."""
        if not isinstance(version, str | Version):
            return False
        try:
            return self.contains(version)
        except ValueError:
            return False

    def __str__(self) -> str:
        return ", ".join(str(c) for c in self.comparators) or "*"


def _next_prerelease_floor(major: int, minor: int, patch: int) -> Version:
    # X.Y.Z-0 is the lowest version of X.Y.Z: "<X.Y.Z-0" excludes its pre-releases.
    return Version(major, minor, patch, prerelease="0")


def _expand(operator: str, version: Version) -> list[Comparator]:
    if operator == "^":
        if version.major:
            upper = _next_prerelease_floor(version.major + 1, 0, 0)
        elif version.minor:
            upper = _next_prerelease_floor(0, version.minor + 1, 0)
        else:
            upper = _next_prerelease_floor(0, 0, version.patch + 1)
        return [Comparator(">=", version), Comparator("<", upper)]
    if operator == "~":
        return [Comparator(">=", version), Comparator("<", _next_prerelease_floor(version.major, version.minor + 1, 0))]
    return [Comparator({"==": "=", "": "="}.get(operator, operator), version)]


def parse_range(text: str) -> VersionRange:
    """Parse a range such as ``>=2.0.0, <3.0.0`` or ``^1.2.3``; ``*`` or empty is any version."""
    if not isinstance(text, str):
        raise ValueError(f"A version range must be text such as '>=1.0.0, <2.0.0', not {type(text).__name__}.")
    if len(text) > MAX_RANGE_LENGTH:
        raise ValueError(f"The version range is longer than {MAX_RANGE_LENGTH} characters.")
    stripped = text.strip()
    if stripped in ("", "*"):
        return VersionRange(text=text, comparators=())
    parts = stripped.split(",")
    if len(parts) > MAX_COMPARATORS:
        raise ValueError(f"The version range has more than {MAX_COMPARATORS} comparators.")
    comparators: list[Comparator] = []
    for part in parts:
        match = _COMPARATOR.fullmatch(part)
        if match is None or not match.group(2):
            raise ValueError(
                f"{part.strip()!r} in {text!r} is not a comparator: write an operator "
                "(>=, >, <=, <, =, !=, ^ or ~) and a full version, such as '>=1.2.0', and join "
                "comparators with commas."
            )
        operator, version_text = match.group(1) or "", match.group(2)
        try:
            version = parse_version(version_text)
        except ValueError as error:
            raise ValueError(f"In the version range {text!r}: {error}") from None
        comparators.extend(_expand(operator, version))
    return VersionRange(text=text, comparators=tuple(comparators))


def is_valid_range(text: str) -> bool:
    try:
        parse_range(text)
    except ValueError:
        return False
    return True


__all__ = [
    "Comparator", "ORDERING_KEY_MAX_LENGTH", "MAX_VERSION_LENGTH", "Version", "VersionRange", "is_valid_range",
    "latest", "ordering_key", "parse_range", "parse_version", "version_sort_key",
]
