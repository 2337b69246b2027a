from mercato.kit.errors import Conflict, Forbidden, InvalidTransition, NotFound
from mercato.library.errors import NotEntitled

__all__ = ["NotEntitled", "OwnListing", "ReviewExists", "ReviewNotFound", "ReviewStateUnchanged"]


class ReviewNotFound(NotFound):
    code, title = "review_not_found", "No such review"


class ReviewExists(Conflict):
    code, title = "review_exists", "You already reviewed this listing"


class OwnListing(Forbidden):
    code, title = "own_listing", "Publishers do not review their own listings"


class ReviewStateUnchanged(InvalidTransition):
    """409 ``invalid_transition``: hiding a hidden review, or showing a visible one."""

    title = "The review is already in that state"
