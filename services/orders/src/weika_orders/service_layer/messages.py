"""The event payloads the orders service publishes (weika.events.v1), built from domain objects."""

from __future__ import annotations

from datetime import datetime

from weika.events.v1 import orders_pb2 as events
from weika_kit.protos import to_timestamp
from weika_orders.domain.model import CouponTerms, Order, OrderLine


def _terms(terms: CouponTerms | None) -> events.CouponTerms | None:
    if terms is None:
        return None
    return events.CouponTerms(
        face_value=terms.face_value, threshold=terms.threshold, store_ids=list(terms.store_ids),
        redeem_methods=list(terms.redeem_methods), validity_mode=terms.validity_mode,
        validity_days=terms.validity_days, starts_after_days=terms.starts_after_days,
        starts_at=to_timestamp(terms.starts_at), ends_at=to_timestamp(terms.ends_at),
        discount_rate=terms.discount_rate, max_discount=terms.max_discount,
        usage_windows=[events.CouponUsageWindow(weekdays=list(days), start_hour=start, end_hour=end)
                       for days, start, end in terms.usage_windows],
        max_uses=terms.max_uses)


def _lines(lines: list[OrderLine]) -> list[events.OrderLine]:
    return [events.OrderLine(
        product_id=line.product_id, product_name=line.product_name, product_kind=line.product_kind,
        category_id=line.category_id, quantity=line.quantity, unit_price=line.unit_price,
        line_amount=line.line_amount, coupon=_terms(line.coupon)) for line in lines]


def _customer(order: Order) -> events.OrderCustomer:
    # Events never carry the phone number.
    c = order.customer
    return events.OrderCustomer(customer_id=c.id, external_id=c.external_id, birth_year=c.birth_year or 0,
                                region=c.region or "")


def order_created(order: Order) -> events.OrderCreated:
    return events.OrderCreated(
        order_id=order.id, merchant_id=order.merchant_id, mode=order.mode, customer=_customer(order),
        lines=_lines(order.lines), total_amount=order.total_amount, discount_amount=order.discount_amount,
        payable_amount=order.payable_amount, store_id=order.store_id, created_at=to_timestamp(order.created_at))


def order_paid(order: Order, payment_id: str) -> events.OrderPaid:
    return events.OrderPaid(
        order_id=order.id, merchant_id=order.merchant_id, mode=order.mode, customer=_customer(order),
        lines=_lines(order.lines), total_amount=order.total_amount, discount_amount=order.discount_amount,
        paid_amount=order.paid_amount, channel=order.channel, payment_id=payment_id, store_id=order.store_id,
        paid_at=to_timestamp(order.paid_at))


def order_cancelled(order: Order, reason: str, cancelled_at: datetime) -> events.OrderCancelled:
    return events.OrderCancelled(
        order_id=order.id, merchant_id=order.merchant_id, mode=order.mode, reason=reason,
        lines=_lines(order.lines), cancelled_at=to_timestamp(cancelled_at))


def order_completed(order: Order, completed_at: datetime) -> events.OrderCompleted:
    return events.OrderCompleted(order_id=order.id, merchant_id=order.merchant_id, mode=order.mode,
                                 completed_at=to_timestamp(completed_at))


def order_refunded(order: Order, refund_id: str, refunded: list[OrderLine], amount: int, reason: str,
                   refunded_at: datetime) -> events.OrderRefunded:
    return events.OrderRefunded(order_id=order.id, merchant_id=order.merchant_id, mode=order.mode,
                                refund_id=refund_id, lines=_lines(refunded), refund_amount=amount, reason=reason,
                                refunded_at=to_timestamp(refunded_at))
