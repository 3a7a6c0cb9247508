"""The redemption service's event handlers, one per topic, in one visible table."""

from __future__ import annotations

from datetime import UTC
from typing import cast

from weika.events.v1 import orders_pb2
from weika_kit.consumer import Event, Handler
from weika_kit.context import require_caller
from weika_kit.db import Database, UnitOfWork
from weika_kit.protos import from_timestamp
from weika_redemption.domain.model import CouponTerms, UsageWindow
from weika_redemption.service_layer import services

COUPON_KIND = "coupon"


def terms_from_event(terms: orders_pb2.CouponTerms) -> CouponTerms:
    return CouponTerms(
        face_value=terms.face_value, threshold=terms.threshold, store_ids=tuple(terms.store_ids),
        redeem_methods=tuple(terms.redeem_methods), validity_mode=terms.validity_mode,
        validity_days=terms.validity_days, starts_after_days=terms.starts_after_days,
        starts_at=from_timestamp(terms.starts_at, present=terms.HasField("starts_at")),
        ends_at=from_timestamp(terms.ends_at, present=terms.HasField("ends_at")),
        usage_windows=tuple(UsageWindow(tuple(w.weekdays), w.start_hour, w.end_hour) for w in terms.usage_windows),
        # 0 (unset by an older orders service) = a single-use coupon
        max_uses=terms.max_uses or 1)


def paid_order_from_event(paid: orders_pb2.OrderPaid) -> services.PaidOrder:
    return services.PaidOrder(
        order_id=paid.order_id, merchant_id=paid.merchant_id, mode=paid.mode,
        customer_id=paid.customer.customer_id,
        coupon_lines=[
            services.PaidCouponLine(product_id=line.product_id, category_id=line.category_id,
                                    quantity=line.quantity, terms=terms_from_event(line.coupon))
            for line in paid.lines if line.product_kind == COUPON_KIND])


def on_order_paid(event: Event, uow: UnitOfWork) -> None:
    # The envelope's time (when the order was paid and recorded), not the moment we got round to it:
    # a consumer that lags or replays gives the same validity windows.
    issued_at = event.envelope.time.astimezone(UTC)
    paid = cast(orders_pb2.OrderPaid, event.payload)
    services.issue_coupons(uow, require_caller(), paid_order_from_event(paid), issued_at)


def on_order_refunded(event: Event, uow: UnitOfWork) -> None:
    refunded = cast(orders_pb2.OrderRefunded, event.payload)
    lines = [(line.product_id, line.quantity) for line in refunded.lines if line.product_kind == COUPON_KIND]
    if lines:
        services.void_refunded_coupons(uow, require_caller(), refunded.order_id, refunded.refund_id, lines)


def handlers(db: Database) -> dict[str, dict[str, Handler]]:
    return {
        "orders": {
            "weika.orders.order-paid.v1": on_order_paid,
            "weika.orders.order-refunded.v1": on_order_refunded,
        },
    }
