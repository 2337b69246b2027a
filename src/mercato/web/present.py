"""How the buyer's pages show things: amounts in minor units, and links on this site.

Importing this module registers the ``minor`` template filter: ``{{ 1999 | minor("USD") }}``
→ ``19.99 USD`` (the layout's ``money`` filter takes a ``Money`` object).
"""

from __future__ import annotations

from mercato.config import Settings
from mercato.kit.money import format_money
from mercato.web.pages import templates


def minor(amount: int, currency: str) -> str:
    return format_money(int(amount), currency)


templates.env.filters["minor"] = minor


def on_this_site(url: str, settings: Settings) -> str:
    """A URL under the store's ``public_url`` (the sandbox's pay page) as a path on this site,
    so it works however the browser reached the store (another host name, a test server's
    port); anything else (an outside provider's page) unchanged."""
    base = settings.public_url.rstrip("/")
    if url.startswith(base + "/"):
        return url[len(base):]
    return url
