"""The marketing service's refusals, each with a stable code, and the reason codes a quote gives."""

from weika_kit.errors import InvalidArgument

# Why a campaign that matched the basket was not applied (RefusedDiscount.reason_code).
THRESHOLD_NOT_MET = "threshold_not_met"
NOT_STACKABLE = "not_stackable"
NOTHING_LEFT_TO_DISCOUNT = "nothing_left_to_discount"


class InvalidCampaign(InvalidArgument):
    code = "invalid_campaign"


class UnsupportedCampaignKind(InvalidArgument):
    code = "unsupported_campaign_kind"


class TiersNotAscending(InvalidArgument):
    code = "tiers_not_ascending"


class ReductionNotBelowThreshold(InvalidArgument):
    code = "reduction_not_below_threshold"


class CampaignEndsBeforeStart(InvalidArgument):
    code = "campaign_ends_before_start"


class EmptyBasket(InvalidArgument):
    code = "empty_basket"


class TooManyLines(InvalidArgument):
    code = "too_many_lines"


class InvalidQuantity(InvalidArgument):
    code = "invalid_quantity"


class InvalidUnitPrice(InvalidArgument):
    code = "invalid_unit_price"
