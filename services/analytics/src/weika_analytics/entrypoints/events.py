"""The analytics event handlers, one per topic, in one visible table: each turns an event into a fact."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from weika_analytics.domain.errors import MalformedEvent
from weika_analytics.domain.model import (
    Fact,
    IssuedCoupon,
    PaidLine,
    PaidOrder,
    Redemption,
    RedemptionReversal,
    Refund,
    VoidedCoupon,
)
from weika_analytics.service_layer import services
from weika_kit.consumer import Event, Handler
from weika_kit.context import require_caller
from weika_kit.db import Database, UnitOfWork
from weika_kit.protos import from_timestamp


def _time(payload: Any, field: str) -> datetime | None:
    return from_timestamp(getattr(payload, field), present=payload.HasField(field))


def _record(event: Event, uow: UnitOfWork, fact: Fact) -> None:
    caller = require_caller()  # bound from the envelope by the consumer
    payload = event.payload
    # The rows are keyed by the envelope's tenant; a payload that names another one is a producer bug.
    if (payload.merchant_id, payload.mode) != (caller.merchant_id, caller.mode):
        raise MalformedEvent(
            f"{fact.kind} {fact.key}: payload tenant {payload.merchant_id}/{payload.mode} differs from "
            f"envelope {caller.merchant_id}/{caller.mode}",
            details={"fact": fact.kind, "key": fact.key})
    services.record_fact(uow, caller, fact, event.envelope.id)


def on_order_paid(event: Event, uow: UnitOfWork) -> None:
    p = event.payload
    _record(event, uow, PaidOrder(
        order_id=p.order_id, store_id=p.store_id, customer_id=p.customer.customer_id,
        customer_external_id=p.customer.external_id, customer_birth_year=p.customer.birth_year,
        customer_region=p.customer.region, total_amount=p.total_amount, discount_amount=p.discount_amount,
        paid_amount=p.paid_amount, channel=p.channel, paid_at=_time(p, "paid_at"),
        lines=tuple(PaidLine(product_id=line.product_id, product_kind=line.product_kind,
                             category_id=line.category_id, quantity=line.quantity, unit_price=line.unit_price,
                             line_amount=line.line_amount) for line in p.lines)))


def on_order_refunded(event: Event, uow: UnitOfWork) -> None:
    p = event.payload
    _record(event, uow, Refund(refund_id=p.refund_id, order_id=p.order_id, refund_amount=p.refund_amount,
                               reason=p.reason, refunded_at=_time(p, "refunded_at")))


def on_coupon_issued(event: Event, uow: UnitOfWork) -> None:
    p = event.payload
    _record(event, uow, IssuedCoupon(
        coupon_id=p.coupon_id, order_id=p.order_id, product_id=p.product_id, category_id=p.category_id,
        customer_id=p.customer_id, face_value=p.face_value, threshold=p.threshold,
        valid_from=_time(p, "valid_from"), valid_until=_time(p, "valid_until"), issued_at=_time(p, "issued_at")))


def on_coupon_redeemed(event: Event, uow: UnitOfWork) -> None:
    p = event.payload
    _record(event, uow, Redemption(
        redemption_id=p.redemption_id, coupon_id=p.coupon_id, order_id=p.order_id, product_id=p.product_id,
        category_id=p.category_id, customer_id=p.customer_id, store_id=p.store_id, operator_id=p.operator_id,
        order_amount=p.order_amount, face_value=p.face_value, redeemed_at=_time(p, "redeemed_at")))


def on_coupon_reversed(event: Event, uow: UnitOfWork) -> None:
    p = event.payload
    _record(event, uow, RedemptionReversal(
        redemption_id=p.redemption_id, coupon_id=p.coupon_id, store_id=p.store_id, operator_id=p.operator_id,
        reason=p.reason, reversed_at=_time(p, "reversed_at")))


def on_coupon_voided(event: Event, uow: UnitOfWork) -> None:
    p = event.payload
    _record(event, uow, VoidedCoupon(coupon_id=p.coupon_id, order_id=p.order_id, reason=p.reason,
                                     voided_at=_time(p, "voided_at")))


HANDLERS: dict[str, Handler] = {
    "weika.orders.order-paid.v1": on_order_paid,
    "weika.orders.order-refunded.v1": on_order_refunded,
    "weika.redemption.coupon-issued.v1": on_coupon_issued,
    "weika.redemption.coupon-redeemed.v1": on_coupon_redeemed,
    "weika.redemption.coupon-reversed.v1": on_coupon_reversed,
    "weika.redemption.coupon-voided.v1": on_coupon_voided,
}


def handlers(db: Database) -> dict[str, dict[str, Handler]]:
    # One consumer group, "analytics.events": facts are independent, so one group serves every topic.
    return {"events": HANDLERS}
