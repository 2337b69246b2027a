from mercato.kit.errors import Forbidden, InvalidTransition, NotFound


class EntitlementNotFound(NotFound):
    code, title = "entitlement_not_found", "No such entitlement"


class EntitlementAlreadyRevoked(InvalidTransition):
    """409 ``invalid_transition``: the entitlement was revoked before."""

    title = "This entitlement is already revoked"


class NotEntitled(Forbidden):
    code, title = "not_entitled", "You do not own this listing"
