"""Markdown to safe HTML for descriptions, changelogs and reviews.

CommonMark with raw HTML disabled (it is shown as text) and markdown-it's link
validation (no ``javascript:``, ``vbscript:``, ``file:`` or non-image ``data:`` URLs).
Links get ``rel="nofollow ugc noopener"`` since publishers and users write them.
"""

from __future__ import annotations

from functools import lru_cache

from markdown_it import MarkdownIt

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")


def _link_open(self, tokens, idx, options, env):  # type: ignore[no-untyped-def]
    tokens[idx].attrSet("rel", "nofollow ugc noopener")
    return self.renderToken(tokens, idx, options, env)


_md.add_render_rule("link_open", _link_open)


@lru_cache(maxsize=4096)
def render_markdown(text: str) -> str:
    return _md.render(text) if text else ""
