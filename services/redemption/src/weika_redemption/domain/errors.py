"""The redemption service's refusals, each with a stable code."""

from weika_kit.errors import Conflict, InvalidArgument, NotFound, PermissionDenied


class CouponNotFound(NotFound):
    """Unknown code, another merchant's, or the other mode's: one answer for all, so codes cannot be probed."""

    code = "coupon_not_found"


class CouponVoided(Conflict):
    code = "coupon_voided"


class CouponAlreadyRedeemed(Conflict):
    code = "coupon_already_redeemed"


class CouponNotYetValid(Conflict):
    code = "coupon_not_yet_valid"


class CouponExpired(Conflict):
    code = "coupon_expired"


class CouponOutsideUsageHours(Conflict):
    code = "coupon_outside_usage_hours"


class CouponNotValidAtStore(InvalidArgument):
    code = "coupon_not_valid_at_store"


class RedeemMethodNotAllowed(InvalidArgument):
    code = "redeem_method_not_allowed"


class StoreNotPermitted(PermissionDenied):
    code = "store_not_permitted"


class OrderAmountRequired(InvalidArgument):
    code = "order_amount_required"


class CouponThresholdNotMet(Conflict):
    code = "coupon_threshold_not_met"


class InvalidCouponTerms(InvalidArgument):
    """An order-paid line whose coupon terms cannot give a validity window (the event goes to the dead-letter topic)."""

    code = "invalid_coupon_terms"


class CouponsNotIssuedYet(Conflict):
    code = "coupons_not_issued_yet"


class RedemptionNotFound(NotFound):
    code = "redemption_not_found"


class ReversalWindowPassed(Conflict):
    code = "reversal_window_passed"


class RedemptionAlreadyReversed(Conflict):
    code = "redemption_already_reversed"
