"""The one rule for paths inside a package, shared by the archive scanner and by the
manifest keys that name files: :func:`path_problem` says why a path is unsafe,
:func:`path_key` what two paths landing on the same file have in common."""

from __future__ import annotations

import re
import unicodedata

MAX_PATH_LENGTH = 1024
MAX_SEGMENT_BYTES = 255

_DRIVE = re.compile(r"[A-Za-z]:")
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
"""Unicode categories of control and invisible characters, refused in paths and one-line texts."""


def path_problem(path: str) -> str | None:
    """Why ``path`` is not a safe member path (relative, normalised, portable), or None.

    Refused: empty paths or segments, absolute paths, ``.`` and ``..`` segments, drive
    letters and any ``:``, backslashes, NUL, control and invisible characters (bidi
    overrides, zero-width characters), names ending in a space or a dot (Windows drops
    those), names over 255 bytes, paths over 1024 characters, and paths that Unicode
    compatibility normalisation (NFKC) turns into any of these (a fullwidth ``／``, a
    one-dot leader ``․``).
    """
    if not path:
        return "the path is empty"
    if len(path) > MAX_PATH_LENGTH:
        return f"the path is longer than {MAX_PATH_LENGTH} characters"
    for char in path:
        if char == "\x00":
            return "it contains a NUL character"
        if unicodedata.category(char) in INVISIBLE_CATEGORIES:
            return f"it contains the control or invisible character U+{ord(char):04X}"
    problem = _plain_path_problem(path)
    if problem is not None:
        return problem
    normalised = unicodedata.normalize("NFKC", path)
    if normalised != path and (_plain_path_problem(normalised) is not None
                               or normalised.count("/") != path.count("/")):
        return f"it turns into the unsafe path {normalised!r} under Unicode normalisation (NFKC)"
    return None


def _plain_path_problem(path: str) -> str | None:
    if "\\" in path:
        return "it contains a backslash; separate folders with '/'"
    if path.startswith("/"):
        return "it is absolute; paths must be relative to the package root"
    if _DRIVE.match(path):
        return "it starts with a drive letter; paths must be relative to the package root"
    if ":" in path:
        return "it contains ':', which is not portable (drive letters, alternate data streams)"
    for segment in path.split("/"):
        if segment == "":
            return "it has an empty segment ('//', or a leading or trailing '/')"
        if segment in (".", ".."):
            return f"it has a {segment!r} segment; paths must be normalised and stay inside the package"
        if segment[-1] in " .":
            return f"the name {segment!r} ends with a space or a dot, which Windows drops"
        if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
            return f"a name is longer than {MAX_SEGMENT_BYTES} bytes"
    return None


def path_key(path: str) -> str:
    """What two paths that would land on the same file share (case and width folded)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", path).casefold())
