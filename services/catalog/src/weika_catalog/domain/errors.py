"""The catalog's refusals, each with a stable code."""

from weika_kit.errors import Conflict, InvalidArgument, NotFound


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
