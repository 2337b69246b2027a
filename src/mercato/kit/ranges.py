"""HTTP ``Range`` requests (RFC 9110 section 14): the one byte range a download serves."""

from __future__ import annotations

import re

from mercato.kit.errors import RangeNotSatisfiable

_RANGE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$", re.ASCII)  # no number longer than a file size


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One ``bytes=a-b`` range as [start, end) or None for the whole file. Several ranges are
    answered with the whole file (allowed by RFC 9110); a range outside the file is 416."""
    if not header or "," in header:
        return None
    match = _RANGE.match(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # the last N bytes
        length = int(last)
        if length == 0:
            raise RangeNotSatisfiable("The range asks for no bytes.", headers={"Content-Range": f"bytes */{size}"})
        return max(0, size - length), size
    start = int(first)
    end = min(int(last) + 1, size) if last else size
    if start >= size or end <= start:
        raise RangeNotSatisfiable(f"The file has {size} bytes.", headers={"Content-Range": f"bytes */{size}"})
    return start, end
