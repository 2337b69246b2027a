"""Typed errors of orders, checkout and fulfilment (rendered as RFC 9457 problems)."""

from __future__ import annotations

from mercato.kit.errors import Conflict, InvalidTransition, NotFound, ValidationFailed


class OrderNotFound(NotFound):
    """404, also for orders the caller may not see (someone else's)."""

    code, title = "order_not_found", "No such order"


class OrderInvalid(ValidationFailed):
    """422: the items, quantities or address do not make a valid order."""

    code, title = "order_invalid", "The order is not valid"


class ListingNotAvailable(ValidationFailed):
    """422: a listing in the order is unknown, not published, or not offered that way."""

    code, title = "listing_not_available", "A listing in the order cannot be bought that way"


class ShippingAddressRequired(ValidationFailed):
    code, title = "shipping_address_required", "Physical items need a shipping address"


class AlreadyOwned(Conflict):
    code, title = "already_owned", "You already own this listing"


class OwnListing(Conflict):
    """409: members of a publisher have its listings already; they do not buy them."""

    code, title = "own_listing", "You cannot buy your own publisher's listing"


class OutOfStock(Conflict):
    code, title = "out_of_stock", "Not enough stock for this order"


class LicenceKeysExhausted(Conflict):
    code, title = "licence_keys_exhausted", "No licence key is left for a listing in this order"


class OrderTransitionRefused(InvalidTransition):
    """409 ``invalid_transition``: the order is not in a state that allows this."""

    title = "That change is not allowed in the order's current state"


class PaymentsUnavailable(Conflict):
    code, title = "payments_unavailable", "Payments through a provider are not available"
