"""The orders service's refusals, each with a stable code."""

import grpc

from weika_kit.errors import Conflict, DomainError, InvalidArgument, NotFound, PermissionDenied


class OrderNotFound(NotFound):
    code = "order_not_found"


class InvalidOrderRequest(InvalidArgument):
    code = "invalid_order_request"


class IdempotencyKeyRequired(InvalidArgument):
    code = "idempotency_key_required"


class IdempotencyKeyReused(InvalidArgument):
    code = "idempotency_key_reused"


class EmptyOrder(InvalidArgument):
    code = "empty_order"


class InvalidQuantity(InvalidArgument):
    code = "invalid_quantity"


class InvalidCustomer(InvalidArgument):
    code = "invalid_customer"


class InvalidPhone(InvalidArgument):
    code = "invalid_phone"


class InvalidBirthYear(InvalidArgument):
    code = "invalid_birth_year"


class UnsupportedPaymentChannel(InvalidArgument):
    code = "unsupported_payment_channel"


class SimulatedPaymentTestModeOnly(InvalidArgument):
    code = "simulated_payment_test_mode_only"


class InvalidOrderTransition(Conflict):
    code = "invalid_order_transition"


class OrderCreationFailed(Conflict):
    code = "order_creation_failed"


class StoreNotAllowed(PermissionDenied):
    code = "store_not_allowed"


class PriceQuoteInconsistent(DomainError):
    """Marketing answered with amounts that do not add up: a bug upstream, never charged to the buyer."""

    code = "price_quote_inconsistent"
    status = grpc.StatusCode.INTERNAL
