"""The catalog's refusals, each with a stable code."""

import grpc

from weika_kit.errors import Conflict, DomainError, InvalidArgument, NotFound


class CategoryNotFound(NotFound):
    code = "category_not_found"


class ProductNotFound(NotFound):
    code = "product_not_found"


class InvalidProduct(InvalidArgument):
    code = "invalid_product"


class ValidityEndsBeforeStart(InvalidArgument):
    code = "validity_ends_before_start"


class FaceValueExceedsThreshold(InvalidArgument):
    code = "face_value_exceeds_threshold"


class OutOfStock(Conflict):
    code = "out_of_stock"


class ProductOffShelf(Conflict):
    code = "product_off_shelf"


class CategoryNotEmpty(Conflict):
    code = "category_not_empty"


class DiscountRateOutOfRange(InvalidArgument):
    code = "discount_rate_out_of_range"


class InvalidUsageWindow(InvalidArgument):
    code = "invalid_usage_window"


class PurchaseLimitExceeded(Conflict):
    code = "purchase_limit_exceeded"


class NotACardKeyProduct(Conflict):
    code = "not_a_card_key_product"


class InvalidCursor(InvalidArgument):
    code = "invalid_cursor"


class ImportRejected(InvalidArgument):
    code = "import_rejected"


class ImportJobNotFound(NotFound):
    code = "import_job_not_found"


class VirtualGoodsDelivered(Conflict):
    """A refund asked to withdraw more units than are still undelivered: a key shown or a top-up performed
    cannot be taken back."""

    code = "virtual_goods_delivered"


class WithdrawalRestored(Conflict):
    """The refund's withdrawal was given back (RestoreDeliveries, the refund was refused): that refund id
    withdraws nothing again; a new refund has a new id."""

    code = "withdrawal_restored"


class WithdrawalAlreadyRefunded(Conflict):
    """The refund's order-refunded restock happened: the withdrawn units were paid back and put on sale again,
    so they cannot be restored to the order."""

    code = "withdrawal_already_refunded"


class DeliveryChangedConcurrently(DomainError):
    """A delivery row kept changing under a withdrawal or a delivery: nothing was done; retry."""

    code = "delivery_changed_concurrently"
    status = grpc.StatusCode.ABORTED
