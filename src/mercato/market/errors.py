from mercato.kit.errors import Conflict, NotFound
from mercato.kit.ssrf import UrlNotAllowed

__all__ = ["MarketSourceExists", "MarketSourceNotFound", "MirroredListingNotFound", "UrlNotAllowed"]


class MarketSourceNotFound(NotFound):
    code, title = "market_source_not_found", "No such market source"


class MirroredListingNotFound(NotFound):
    code, title = "mirrored_listing_not_found", "No such mirrored listing"


class MarketSourceExists(Conflict):
    code, title = "market_source_exists", "This store is already a market source"
