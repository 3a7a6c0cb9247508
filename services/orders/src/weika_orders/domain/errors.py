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


class InvalidCustomerTags(InvalidArgument):
    code = "invalid_customer_tags"


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


class InvalidPaymentChannelConfig(InvalidArgument):
    code = "invalid_payment_channel_config"


class PaymentChannelNotConfigured(Conflict):
    code = "payment_channel_not_configured"


class PaymentSimulatorNotConfigured(Conflict):
    code = "payment_simulator_not_configured"


class PaymentProviderRefused(Conflict):
    code = "payment_provider_refused"


class PaymentProviderUnavailable(DomainError):
    """The provider did not answer (or answered something we cannot trust): retry later."""

    code = "payment_provider_unavailable"
    status = grpc.StatusCode.UNAVAILABLE


class InvalidOrderSettings(InvalidArgument):
    code = "invalid_order_settings"


class NothingToShip(Conflict):
    code = "nothing_to_ship"


class InvalidCursor(InvalidArgument):
    code = "invalid_cursor"


class CustomerNotFound(NotFound):
    code = "customer_not_found"


class RefundNotAllowed(Conflict):
    """The merchant's refund rules refuse it (window closed, refunds off, partial refunds off)."""

    code = "refund_not_allowed"


class InvalidRefundQuantity(InvalidArgument):
    code = "invalid_refund_quantity"


class RefundRefused(Conflict):
    """Voiding the coupons was refused (a coupon was redeemed or expired): no money goes back."""

    code = "refund_refused"
