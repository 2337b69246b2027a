"""The composition root of a store's long-lived objects: the platform's :class:`Runtime`, with
the adapters that live above the platform (the live hub, the mailer, the payment gateway, the
listing search) wired in. Import ``Runtime`` from here to build one with
:meth:`Runtime.from_settings`."""

from __future__ import annotations

from mercato.catalog.search.backend import listing_search_for
from mercato.live.hub import make_hub
from mercato.notifications.email import make_mailer
from mercato.payments.providers.factory import build_gateway
from mercato.platform.runtime import Runtime, wire

wire(live_hub=make_hub, mailer=make_mailer, payments=build_gateway, listing_search=listing_search_for)

__all__ = ["Runtime"]
