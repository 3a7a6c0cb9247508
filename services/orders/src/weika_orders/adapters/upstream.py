"""Clients of the services orders depends on (catalog, marketing, redemption), in domain terms and domain errors.

A refusal from upstream (out_of_stock, product_not_found, ...) comes back as a DomainError of the same kind,
code, message, details and gRPC status, so the gateway shows the buyer exactly what the catalog said.
A call that failed without an answer (unavailable, timed out, internal) becomes an `UpstreamFailure`:
the caller cannot know whether it took effect, so it keeps what it has and lets a retry resume.
"""

from __future__ import annotations

import logging

import grpc

from weika.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from weika.marketing.v1 import marketing_pb2, marketing_pb2_grpc
from weika.redemption.v1 import redemption_pb2, redemption_pb2_grpc
from weika_kit import grpc_client
from weika_kit.errors import (
    AlreadyExists,
    Conflict,
    DomainError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RemoteError,
    TooManyRequests,
    Unauthenticated,
)
from weika_kit.protos import from_timestamp
from weika_orders.domain.model import CouponTerms, Discount, OrderLine, PriceQuote

log = logging.getLogger(__name__)

_KINDS: dict[grpc.StatusCode, type[DomainError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: Conflict,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.RESOURCE_EXHAUSTED: TooManyRequests,
}


class UpstreamFailure(DomainError):
    """An upstream call ended without a domain answer; whether it took effect is unknown."""

    def __init__(self, status: grpc.StatusCode, message: str, *, code: str, details: dict[str, str]):
        super().__init__(message, code=code, details=details)
        self.status = status  # type: ignore[misc]  # the upstream's own status, not a fixed one


def domain_error_from_remote(error: RemoteError, service: str = "") -> DomainError:
    """The same refusal as a DomainError of the same kind: code, message, details and gRPC status preserved."""
    kind = _KINDS.get(error.status)
    if kind is not None:
        return kind(error.message, code=error.code, details=error.details)
    if service:
        # The transport's own text (addresses, stack names) is for our logs, not for the buyer.
        log.warning("upstream call failed", extra={"upstream": service, "code": error.code, "error": error.message})
        return UpstreamFailure(error.status, f"the {service} service did not answer; please retry",
                               code=error.code, details={**error.details, "service": service})
    return UpstreamFailure(error.status, error.message, code=error.code, details=error.details)


def is_refusal(error: DomainError) -> bool:
    """True when upstream answered "no" (nothing was done); False when the outcome is unknown."""
    return not isinstance(error, UpstreamFailure)


def _call(service: str, method, request):  # type: ignore[no-untyped-def]
    try:
        return grpc_client.call(method, request)
    except RemoteError as error:
        raise domain_error_from_remote(error, service) from None


def _terms(rule: catalog_pb2.CouponRule) -> CouponTerms:
    v = rule.validity
    return CouponTerms(
        face_value=rule.face_value, threshold=rule.threshold, store_ids=tuple(rule.store_ids),
        redeem_methods=tuple(rule.redeem_methods), validity_mode=v.mode, validity_days=v.days,
        starts_after_days=v.starts_after_days,
        starts_at=from_timestamp(v.starts_at, present=v.HasField("starts_at")),
        ends_at=from_timestamp(v.ends_at, present=v.HasField("ends_at")),
        discount_rate=rule.discount_rate, max_discount=rule.max_discount,
        usage_windows=tuple((tuple(w.weekdays), w.start_hour, w.end_hour) for w in rule.usage_windows),
        max_uses=rule.max_uses or 1)


class CatalogClient:
    def __init__(self, target: str = "catalog"):
        self.stub = grpc_client.stub(catalog_pb2_grpc.CatalogServiceStub, target)

    def reserve_stock(self, order_id: str, items: tuple[tuple[str, int], ...],
                      customer_id: str = "") -> list[OrderLine]:
        """Stock for every item or none; idempotent per order id. The lines carry prices and coupon terms.
        The customer lets the catalog enforce per-customer purchase limits."""
        response = _call("catalog", self.stub.ReserveStock, catalog_pb2.ReserveStockRequest(
            order_id=order_id, customer_id=customer_id,
            lines=[catalog_pb2.ReserveStockLine(product_id=p, quantity=q) for p, q in items]))
        return [
            OrderLine(product_id=line.product_id, product_name=line.product_name, product_kind=line.product_kind,
                      category_id=line.category_id, quantity=line.quantity, unit_price=line.unit_price,
                      coupon=_terms(line.coupon) if line.HasField("coupon") else None)
            for line in response.lines]

    def release_stock(self, order_id: str, reason: str) -> bool:
        """Give the order's reserved stock back; idempotent (False when nothing was held)."""
        response = _call("catalog", self.stub.ReleaseStock,
                         catalog_pb2.ReleaseStockRequest(order_id=order_id, reason=reason))
        return bool(response.released)

    def withdraw_deliveries(self, order_id: str, refund_id: str, lines: list[tuple[str, int]]) -> dict[str, int]:
        """Take that many undelivered units of each virtual line out of the order's delivery, all or nothing;
        idempotent per refund id. Refused (virtual_goods_delivered) when a key was shown or a top-up performed."""
        response = _call("catalog", self.stub.WithdrawDeliveries, catalog_pb2.WithdrawDeliveriesRequest(
            order_id=order_id, refund_id=refund_id,
            lines=[catalog_pb2.WithdrawDeliveriesLine(product_id=p, quantity=q) for p, q in lines]))
        return {line.product_id: line.quantity for line in response.lines}

    def restore_deliveries(self, order_id: str, refund_id: str) -> dict[str, int]:
        """Give the order back what the refund withdrew (the refund was refused after it); once per refund id,
        a refund that withdrew nothing answers nothing."""
        response = _call("catalog", self.stub.RestoreDeliveries,
                         catalog_pb2.RestoreDeliveriesRequest(order_id=order_id, refund_id=refund_id))
        return {line.product_id: line.quantity for line in response.lines}


class MarketingClient:
    def __init__(self, target: str = "marketing"):
        self.stub = grpc_client.stub(marketing_pb2_grpc.MarketingServiceStub, target)

    def quote_price(self, lines: list[OrderLine], customer_id: str) -> PriceQuote:
        quote = _call("marketing", self.stub.QuotePrice, marketing_pb2.QuotePriceRequest(
            customer_id=customer_id,
            lines=[marketing_pb2.QuoteLine(product_id=line.product_id, category_id=line.category_id,
                                           quantity=line.quantity, unit_price=line.unit_price)
                   for line in lines]))
        return PriceQuote(
            subtotal=quote.subtotal, discount_amount=quote.discount_amount, total=quote.total,
            discounts=tuple(Discount(rule_id=d.rule_id, kind=d.kind, amount=d.amount, description=d.description)
                            for d in quote.applied))


class RedemptionClient:
    def __init__(self, target: str = "redemption"):
        self.stub = grpc_client.stub(redemption_pb2_grpc.RedemptionServiceStub, target)

    def void_order_coupons(self, order_id: str, refund_id: str, lines: list[tuple[str, int]],
                           allow_expired: bool) -> list[str]:
        """Void that many unredeemed coupons per product, all or nothing; idempotent per refund id."""
        response = _call("redemption", self.stub.VoidOrderCoupons, redemption_pb2.VoidOrderCouponsRequest(
            order_id=order_id, refund_id=refund_id, allow_expired=allow_expired,
            lines=[redemption_pb2.VoidCouponsLine(product_id=p, quantity=q) for p, q in lines]))
        return list(response.coupon_ids)
