"""Typed errors of key pools and licence documents."""

from __future__ import annotations

from mercato.kit.errors import Conflict, NotFound


class KeyPoolEmpty(Conflict):
    """The listing has a key pool and every key in it has been handed out."""

    code, title = "key_pool_empty", "No licence key is left for this listing"


class LicenceNotFound(NotFound):
    """404, never 403: whether someone else owns the listing is none of the caller's business."""

    code, title = "not_entitled", "You hold no licence for this listing"


class OrderLineNotFound(NotFound):
    """``orders.grant.assign_key`` was asked for an order line that does not exist or is of another listing."""

    code, title = "order_line_not_found", "No such order line"
