"""Line charts drawn on the server as SVG (no script, no CDN): one line per series over days."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from html import escape

from markupsafe import Markup

# Colours distinguishable for common colour-vision deficiencies (Okabe–Ito).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
WIDTH, HEIGHT = 560, 200
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 28


def _nice_top(value: float) -> float:
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def line_chart(title: str, days: Sequence[date], series: Sequence[tuple[str, Sequence[float]]], *,
               unit: str = "", summaries: Sequence[str] | None = None) -> Markup:
    """An SVG line chart: ``series`` is (label, one value per day). Named by ``title`` for
    screen readers, with each series' summary (its total, unless ``summaries`` says otherwise)."""
    shown = list(summaries) if summaries is not None else [f"{sum(values):g}{unit}" for _, values in series]
    top = _nice_top(max((max(values, default=0) for _, values in series), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(days) - 1, 1)

    def x(index: int) -> float:
        return LEFT + index * step

    def y(value: float) -> float:
        return TOP + plot_h - (value / top) * plot_h

    totals = "; ".join(f"{label}: {text}" for (label, _), text in zip(series, shown, strict=True))
    parts = [(f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}. '
              f'Totals: {escape(totals)}" xmlns="http://www.w3.org/2000/svg">')]
    for fraction in (0, 0.5, 1):
        gy = y(top * fraction)
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{gy:.1f}" x2="{WIDTH - RIGHT}" y2="{gy:.1f}"/>')
        parts.append(f'<text class="label" x="{LEFT - 6}" y="{gy + 4:.1f}" text-anchor="end">'
                     f'{top * fraction:g}{escape(unit)}</text>')
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}"/>')
    if days:
        for index in sorted({0, len(days) // 2, len(days) - 1}):
            anchor = "start" if index == 0 else "end" if index == len(days) - 1 else "middle"
            parts.append(f'<text class="label" x="{x(index):.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}">'
                         f'{days[index]:%b %d}</text>')
    for number, (label, values) in enumerate(series):
        colour = PALETTE[number % len(PALETTE)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        if len(values) == 1:
            parts.append(f'<circle cx="{x(0):.1f}" cy="{y(values[0]):.1f}" r="3" fill="{colour}"/>')
        parts.append(f'<polyline class="line" stroke="{colour}" points="{points}"><title>{escape(label)}</title>'
                     f'</polyline>')
    parts.append("</svg>")
    legend = "".join(f'<li><svg class="swatch" width="12" height="12" aria-hidden="true"><rect width="12" height="12" '
                     f'fill="{PALETTE[n % len(PALETTE)]}"/></svg>'
                     f'{escape(label)}: {escape(text)}</li>'
                     for n, ((label, _), text) in enumerate(zip(series, shown, strict=True)))
    return Markup("".join(parts) + f'<ul class="legend">{legend}</ul>')
