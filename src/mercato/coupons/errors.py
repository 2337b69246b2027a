"""Typed coupon problems (RFC 9457 codes of API.md)."""

from mercato.kit.errors import Conflict, Forbidden, NotFound, ValidationFailed


class CouponNotFound(NotFound):
    code, title = "coupon_not_found", "No such coupon"


class CouponCodeTaken(Conflict):
    code, title = "coupon_code_taken", "This coupon code is taken"


class CouponScopeForbidden(Forbidden):
    code, title = "forbidden", "You may not create a coupon with this scope"


class CouponAlreadyRedeemed(Conflict):
    """The code, kind or value of a coupon that was redeemed may not change: orders hold them."""

    code, title = "coupon_redeemed", "This coupon was redeemed already"


class CouponLimitBelowRedemptions(Conflict):
    code, title = "coupon_limit_below_redemptions", "The limit is below the redemptions so far"


class CouponInvalid(ValidationFailed):
    """Unknown, inactive, not yet started or ended."""

    code, title = "coupon_invalid", "This coupon cannot be used"


class CouponNotApplicable(ValidationFailed):
    code, title = "coupon_not_applicable", "This coupon applies to nothing in this order"


class CouponLimitReached(Conflict):
    code, title = "coupon_limit_reached", "You have used this coupon as often as it allows"


class CouponExhausted(Conflict):
    code, title = "coupon_exhausted", "This coupon has been used up"
