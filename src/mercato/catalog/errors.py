from mercato.kit.errors import Conflict, InvalidTransition, NotFound, ValidationFailed


class ListingNotFound(NotFound):
    code, title = "listing_not_found", "No such listing"


class ListingSlugTaken(Conflict):
    code, title = "slug_taken", "This listing slug is taken"


class ListingTransitionRefused(InvalidTransition):
    """409 ``invalid_transition``: the listing is not in a state that allows this."""


class CategoryNotFound(NotFound):
    code, title = "category_not_found", "No such category"


class UnknownCategory(ValidationFailed):
    code, title = "unknown_category", "There is no category with that slug"


class CategorySlugTaken(Conflict):
    code, title = "slug_taken", "This category slug is taken"


class CategoryInUse(Conflict):
    code, title = "category_in_use", "Listings still use this category"


class InvalidOffer(ValidationFailed):
    code, title = "invalid_offer", "The offers are not valid"
