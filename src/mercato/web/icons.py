"""Generated listing icons: a listing without an ``icon_url`` shows a deterministic SVG drawn
from its slug (colours from a hash, initials from its words), so every shelf has artwork —
the demo catalog's included — without shipping or storing image files."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import Path
from fastapi.responses import Response

from mercato.web.pages import page_router

router = page_router()

SHAPES = (
    '<circle cx="46" cy="18" r="10" fill="#fff" fill-opacity=".18"/>',
    '<path d="M0 48 L64 30 L64 64 L0 64 Z" fill="#000" fill-opacity=".10"/>',
    '<rect x="38" y="-8" width="34" height="34" rx="8" transform="rotate(25 55 9)" fill="#fff" fill-opacity=".16"/>',
    '<circle cx="10" cy="56" r="16" fill="#fff" fill-opacity=".14"/>',
)


def icon_svg(slug: str) -> str:
    digest = hashlib.sha256(slug.encode()).digest()
    hue = digest[0] * 360 // 256
    second = (hue + 35 + digest[1] % 50) % 360
    words = [w for w in slug.split("-") if w] or [slug]
    initials = (words[0][0] + (words[1][0] if len(words) > 1 else words[0][1:2])).upper()
    shape = SHAPES[digest[2] % len(SHAPES)]
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" width="64" height="64">'
        f'<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="hsl({hue},62%,48%)"/>'
        f'<stop offset="1" stop-color="hsl({second},58%,36%)"/></linearGradient>'
        '<clipPath id="c"><rect width="64" height="64" rx="14"/></clipPath></defs>'
        f'<g clip-path="url(#c)"><rect width="64" height="64" fill="url(#g)"/>{shape}</g>'
        '<text x="32" y="41" text-anchor="middle" font-family="system-ui,-apple-system,Segoe UI,Roboto,sans-serif" '
        f'font-size="24" font-weight="700" fill="#fff">{initials}</text></svg>')


@router.get("/icons/{slug}.svg")
async def listing_icon(slug: Annotated[str, Path(pattern=r"^[a-z0-9-]{2,64}$")]) -> Response:
    return Response(icon_svg(slug), media_type="image/svg+xml",
                    headers={"Cache-Control": "public, max-age=86400"})
