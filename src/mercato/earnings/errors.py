"""Typed earnings and payout problems."""

from mercato.kit.errors import InvalidTransition, NotFound


class PayoutNotFound(NotFound):
    code, title = "payout_not_found", "No such payout"


class PayoutAlreadyDecided(InvalidTransition):
    """409 ``invalid_transition``: the payout was approved or rejected before."""

    title = "This payout was already decided"
