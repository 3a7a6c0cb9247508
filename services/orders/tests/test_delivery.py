"""Delivery by events: issued coupons and delivered virtual goods move a paid digital order to `delivered`
once, whatever is redelivered; physical orders never; the auto-confirm timer then completes it."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

from weika.events.v1 import catalog_pb2 as catalog_events
from weika.events.v1 import redemption_pb2 as redemption_events
from weika_kit import context
from weika_orders.entrypoints import events
from weika_orders.service_layer.timers import complete_confirmed_orders


def _handle(harness, topic: str, payload, caller) -> None:  # type: ignore[no-untyped-def]
    """Run the orders handler for `topic` as the consumer does: caller bound, the consumer commits."""
    handler = events.handlers(harness.db)["delivery"][topic]
    system = caller.__class__(caller.merchant_id, caller.mode, role="system")
    with context.bound(caller=system), harness.db.unit_of_work() as uow:
        handler(SimpleNamespace(payload=payload), uow)
        uow.commit()


def _coupon(harness, callers, order_id: str, coupon_id: str, product_id: str = "prd_coupon") -> None:
    _handle(harness, "weika.redemption.coupon-issued.v1", redemption_events.CouponIssued(
        coupon_id=coupon_id, order_id=order_id, product_id=product_id, merchant_id="mch_tea", mode="test"),
        callers.test)


def _consumed(harness, callers, order_id: str, product_id: str) -> None:
    _handle(harness, "weika.catalog.stock-changed.v1", catalog_events.StockChanged(
        product_id=product_id, order_id=order_id, reason="consumed", merchant_id="mch_tea", mode="test"),
        callers.test)


def test_a_coupon_order_is_delivered_when_every_coupon_unit_is_issued_and_not_before(harness, callers):
    order = harness.create(items=(("prd_coupon", 2),))
    harness.pay(order.id)

    _consumed(harness, callers, order.id, "prd_coupon")  # the catalog's consumed of a coupon is not delivery
    _coupon(harness, callers, order.id, "cpn_1")
    _coupon(harness, callers, order.id, "cpn_1")  # redelivered: still one coupon of two
    assert harness.get(order.id).status == "paid"

    _coupon(harness, callers, order.id, "cpn_2")
    _coupon(harness, callers, order.id, "cpn_2")

    assert harness.get(order.id).status == "delivered"
    delivered = [h for h in harness.rows("order_history", order_id=order.id) if h.to_status == "delivered"]
    assert [(h.from_status, h.actor, h.reason) for h in delivered] == [("paid", "system", "coupons_issued")]


def test_a_mixed_digital_order_needs_its_coupons_and_its_goods(harness, callers):
    order = harness.create(items=(("prd_coupon", 1), ("prd_card", 1)))
    harness.pay(order.id)

    _coupon(harness, callers, order.id, "cpn_1")
    assert harness.get(order.id).status == "paid"
    _consumed(harness, callers, order.id, "prd_card")

    assert harness.get(order.id).status == "delivered"
    [row] = [h for h in harness.rows("order_history", order_id=order.id) if h.to_status == "delivered"]
    assert row.reason == "goods_delivered"


def test_an_order_with_physical_goods_is_never_delivered_by_events(harness, callers):
    order = harness.create(items=(("prd_coupon", 1), ("prd_tea", 1)))
    harness.pay(order.id)

    _coupon(harness, callers, order.id, "cpn_1")
    _consumed(harness, callers, order.id, "prd_tea")

    assert harness.get(order.id).status == "awaiting_shipment"  # physical goods wait for the carrier


def test_deliveries_recorded_before_payment_wait_and_count_when_it_is_paid(harness, callers):
    order = harness.create(items=(("prd_coupon", 1),))
    _coupon(harness, callers, order.id, "cpn_early")
    assert harness.get(order.id).status == "pending_payment"

    harness.pay(order.id)

    assert harness.get(order.id).status == "delivered"


def test_another_tenants_event_does_not_deliver_an_order(harness, callers):
    order = harness.create(items=(("prd_coupon", 1),))
    harness.pay(order.id)

    _handle(harness, "weika.redemption.coupon-issued.v1", redemption_events.CouponIssued(
        coupon_id="cpn_x", order_id=order.id, product_id="prd_coupon"), callers.other_merchant)

    assert harness.get(order.id).status == "paid"
    assert harness.count("order_deliveries") == 0


def test_a_delivered_order_completes_after_auto_confirm_days(harness, callers):
    order = harness.create(items=(("prd_coupon", 1),))
    harness.pay(order.id)
    _coupon(harness, callers, order.id, "cpn_1")

    harness.clock.advance(timedelta(days=8))
    assert complete_confirmed_orders(harness.db) == [order.id]
    assert harness.get(order.id).status == "completed"
