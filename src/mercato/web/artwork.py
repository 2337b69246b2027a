"""Generated listing artwork, drawn from the slug alone (colours from a hash, initials and the
name from its words), so every shelf has pictures without storing image files:

- ``/icons/{slug}.svg``: the icon a listing without an ``icon_url`` shows;
- ``/screenshots/{slug}/{n}.svg`` (n = 1…3): mock screenshots of an app window. Only listings
  that name them in their ``screenshots`` show them — the demo catalog does; a publisher's
  listing shows its own images or none, never invented ones.

Both are same-origin SVG (no script, no external reference), cached by browsers for a day."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import Path
from fastapi.responses import Response

from mercato.web.pages import page_router

router = page_router()

SLUG = Annotated[str, Path(pattern=r"^[a-z0-9-]{2,64}$")]
SCREENSHOT_COUNT = 3
SVG_HEADERS = {"Cache-Control": "public, max-age=86400"}

SHAPES = (
    '<circle cx="46" cy="18" r="10" fill="#fff" fill-opacity=".18"/>',
    '<path d="M0 48 L64 30 L64 64 L0 64 Z" fill="#000" fill-opacity=".10"/>',
    '<rect x="38" y="-8" width="34" height="34" rx="8" transform="rotate(25 55 9)" fill="#fff" fill-opacity=".16"/>',
    '<circle cx="10" cy="56" r="16" fill="#fff" fill-opacity=".14"/>',
)
FONT = 'font-family="system-ui,-apple-system,Segoe UI,Roboto,sans-serif"'


def _palette(slug: str) -> tuple[bytes, int, int]:
    digest = hashlib.sha256(slug.encode()).digest()
    hue = digest[0] * 360 // 256
    return digest, hue, (hue + 35 + digest[1] % 50) % 360


def icon_svg(slug: str) -> str:
    digest, hue, second = _palette(slug)
    words = [w for w in slug.split("-") if w] or [slug]
    initials = (words[0][0] + (words[1][0] if len(words) > 1 else words[0][1:2])).upper()
    shape = SHAPES[digest[2] % len(SHAPES)]
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" width="64" height="64">'
        f'<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="hsl({hue},62%,48%)"/>'
        f'<stop offset="1" stop-color="hsl({second},58%,36%)"/></linearGradient>'
        '<clipPath id="c"><rect width="64" height="64" rx="14"/></clipPath></defs>'
        f'<g clip-path="url(#c)"><rect width="64" height="64" fill="url(#g)"/>{shape}</g>'
        f'<text x="32" y="41" text-anchor="middle" {FONT} '
        f'font-size="24" font-weight="700" fill="#fff">{initials}</text></svg>')


def _lines(x: int, y: int, widths: list[int], colour: str, step: int = 14) -> str:
    return "".join(f'<rect x="{x}" y="{y + i * step}" width="{w}" height="6" rx="3" fill="{colour}"/>'
                   for i, w in enumerate(widths))


def _list_and_detail(digest: bytes, hue: int) -> str:
    """A sidebar of items, one chosen, and the chosen item's page."""
    chosen = digest[3] % 6
    rows = "".join(
        f'<rect x="40" y="{76 + i * 30}" width="120" height="22" rx="5" '
        f'fill="{f"hsl({hue},62%,48%)" if i == chosen else "#eef0f4"}"/>' for i in range(6))
    body = _lines(196, 112, [300, 280, 310, 220], "#d5d9e0")
    picture = (f'<rect x="196" y="180" width="310" height="120" rx="8" fill="hsl({hue},55%,90%)"/>'
               f'<circle cx="250" cy="230" r="22" fill="hsl({hue},62%,48%)" fill-opacity=".55"/>'
               '<path d="M196 300 L290 238 L360 280 L420 246 L506 300 Z" '
               f'fill="hsl({hue},58%,36%)" fill-opacity=".45"/>')
    return (f'{rows}<rect x="176" y="64" width="1" height="250" fill="#e3e6eb"/>'
            f'<rect x="196" y="78" width="180" height="14" rx="4" fill="#333a45"/>{body}{picture}')


def _cards(digest: bytes, hue: int) -> str:
    """A grid of six cards."""
    cards = []
    for i in range(6):
        x, y = 40 + (i % 3) * 162, 76 + (i // 3) * 124
        shade = 40 + digest[4 + i] % 30
        cards.append(f'<rect x="{x}" y="{y}" width="146" height="110" rx="8" fill="#fff" stroke="#e3e6eb"/>'
                     f'<rect x="{x}" y="{y}" width="146" height="58" rx="8" fill="hsl({hue},55%,{shade}%)"/>'
                     + _lines(x + 12, y + 70, [96, 70], "#d5d9e0"))
    return "".join(cards)


def _chart(digest: bytes, hue: int) -> str:
    """Figures over time: a bar chart with a trend line and a legend."""
    heights = [40 + digest[10 + i] % 150 for i in range(10)]
    bars = "".join(f'<rect x="{60 + i * 44}" y="{300 - h}" width="26" height="{h}" rx="4" '
                   f'fill="hsl({hue},62%,{44 + (i % 2) * 10}%)"/>' for i, h in enumerate(heights))
    trend = " ".join(f"{73 + i * 44},{300 - h - 14}" for i, h in enumerate(heights))
    return (f'<rect x="40" y="300" width="480" height="1" fill="#c9ced6"/>{bars}'
            f'<polyline points="{trend}" fill="none" stroke="#333a45" stroke-width="3" stroke-linejoin="round"/>'
            f'<rect x="40" y="76" width="140" height="12" rx="4" fill="#333a45"/>' + _lines(40, 96, [90], "#d5d9e0"))


SCENES = (_list_and_detail, _cards, _chart)


def screenshot_svg(slug: str, number: int) -> str:
    """Screenshot ``number`` (1…3) of the listing ``slug``: an app window whose layout depends
    on the number and whose colours on the slug."""
    digest, hue, second = _palette(slug)
    name = " ".join(word.capitalize() for word in slug.split("-") if word)
    scene = SCENES[(number - 1) % len(SCENES)](digest, hue)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 560 350" width="560" height="350">'
        f'<defs><linearGradient id="bg" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="hsl({hue},62%,48%)"/>'
        f'<stop offset="1" stop-color="hsl({second},58%,30%)"/></linearGradient></defs>'
        '<rect width="560" height="350" fill="url(#bg)"/>'
        '<rect x="20" y="20" width="520" height="310" rx="10" fill="#f7f8fa"/>'
        '<path d="M20 30 a10 10 0 0 1 10 -10 h500 a10 10 0 0 1 10 10 v18 h-520 Z" fill="#e3e6eb"/>'
        '<circle cx="38" cy="34" r="5" fill="#ff5f57"/><circle cx="56" cy="34" r="5" fill="#febc2e"/>'
        '<circle cx="74" cy="34" r="5" fill="#28c840"/>'
        f'<text x="280" y="39" text-anchor="middle" {FONT} font-size="13" fill="#333a45">{name}</text>'
        f'{scene}</svg>')


@router.get("/icons/{slug}.svg")
async def listing_icon(slug: SLUG) -> Response:
    return Response(icon_svg(slug), media_type="image/svg+xml", headers=SVG_HEADERS)


@router.get("/screenshots/{slug}/{number}.svg")
async def listing_screenshot(slug: SLUG, number: Annotated[int, Path(ge=1, le=SCREENSHOT_COUNT)]) -> Response:
    return Response(screenshot_svg(slug, number), media_type="image/svg+xml", headers=SVG_HEADERS)

