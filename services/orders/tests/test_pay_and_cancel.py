"""PayOrder and CancelOrder: the status machine, exactly-once payment and events, test mode only for simulated."""

from __future__ import annotations

import grpc
import pytest

from weika.events.v1 import orders_pb2 as events
from weika_kit.errors import RemoteError

PAID = "weika.orders.order-paid.v1"
CANCELLED = "weika.orders.order-cancelled.v1"


def test_paying_in_test_mode_emits_exactly_one_order_paid_with_the_coupon_terms(harness):
    order = harness.create(items=(("prd_coupon", 2), ("prd_tea", 1)), external_id="VIP-318", birth_year=1991,
                           region="CN-SH", store_id="sto_1")

    paid = harness.pay(order.id)

    assert paid.status == "awaiting_shipment" and paid.channel == "simulated"  # it has a physical line
    assert paid.paid_amount == paid.payable_amount == 16000 and paid.HasField("paid_at")
    [event] = harness.outbox(PAID, events.OrderPaid)
    assert (event.order_id, event.merchant_id, event.mode, event.store_id) == (order.id, "mch_tea", "test", "sto_1")
    assert (event.total_amount, event.discount_amount, event.paid_amount) == (21000, 5000, 16000)
    assert event.channel == "simulated"
    assert event.payment_id == harness.rows("payments", order_id=order.id)[0].id
    assert (event.customer.customer_id, event.customer.external_id, event.customer.birth_year,
            event.customer.region) == (order.customer.customer_id, "VIP-318", 1991, "CN-SH")
    coupon_line = next(line for line in event.lines if line.product_id == "prd_coupon")
    terms = coupon_line.coupon
    assert (coupon_line.quantity, coupon_line.unit_price, coupon_line.line_amount) == (2, 4500, 9000)
    assert (terms.face_value, terms.threshold, list(terms.redeem_methods)) == (5000, 20000, ["qr", "code"])
    assert list(terms.store_ids) == ["sto_1", "sto_2"]
    assert terms.validity_mode == "fixed" and terms.starts_at.seconds and terms.ends_at.seconds
    assert not next(line for line in event.lines if line.product_id == "prd_tea").HasField("coupon")
    assert [h.to_status for h in harness.rows("order_history", order_id=order.id)] == \
        ["pending_payment", "paid", "awaiting_shipment"]


def test_discount_rate_usage_windows_and_uses_travel_with_the_coupon_terms(harness):
    order = harness.create(items=(("prd_rate", 1),))

    harness.pay(order.id)

    [event] = harness.outbox(PAID, events.OrderPaid)
    terms = event.lines[0].coupon
    assert (terms.discount_rate, terms.max_discount, terms.validity_mode, terms.validity_days) == \
        (8500, 3000, "relative", 30)
    assert [(list(w.weekdays), w.start_hour, w.end_hour) for w in terms.usage_windows] == [([1, 2, 3, 4, 5], 14, 17)]
    assert terms.max_uses == 4


def test_simulated_payment_in_live_mode_is_refused(harness, callers):
    order = harness.create(callers.live)

    with pytest.raises(RemoteError) as refused:
        harness.pay(order.id, callers.live)

    assert (refused.value.code, refused.value.status) == ("simulated_payment_test_mode_only",
                                                          grpc.StatusCode.INVALID_ARGUMENT)
    assert "WeChat Pay" in refused.value.message and "Alipay" in refused.value.message
    assert harness.get(order.id, callers.live).status == "pending_payment"
    assert harness.count("payments") == 0 and harness.outbox(PAID, events.OrderPaid) == []


def test_a_channel_that_does_not_exist_is_refused(harness):
    order = harness.create()

    with pytest.raises(RemoteError) as refused:
        harness.pay(order.id, channel="cash")

    assert refused.value.code == "unsupported_payment_channel"
    assert harness.count("payments") == 0


def test_a_provider_channel_the_merchant_has_not_configured_is_refused(harness):
    order = harness.create()

    with pytest.raises(RemoteError) as refused:
        harness.pay(order.id, channel="wechat")

    assert (refused.value.code, refused.value.details["channel"]) == ("payment_channel_not_configured", "wechat")
    assert harness.get(order.id).status == "pending_payment" and harness.count("payments") == 0


def test_paying_twice_records_one_payment_and_refuses_the_second_with_invalid_order_transition(harness):
    order = harness.create()
    harness.pay(order.id)

    with pytest.raises(RemoteError) as refused:
        harness.pay(order.id)

    assert (refused.value.code, refused.value.status) == ("invalid_order_transition",
                                                          grpc.StatusCode.FAILED_PRECONDITION)
    assert refused.value.details["current_status"] == "paid"
    assert harness.count("payments", order_id=order.id) == 1
    assert len(harness.outbox(PAID, events.OrderPaid)) == 1


def test_cancelling_releases_stock_emits_order_cancelled_once_and_is_idempotent(harness):
    order = harness.create(items=(("prd_rare", 1),))
    assert harness.catalog.products["prd_rare"].stock == 0

    cancelled = harness.cancel(order.id, reason="customer_cancelled")
    again = harness.cancel(order.id)

    assert cancelled.status == again.status == "cancelled"
    assert harness.catalog.products["prd_rare"].stock == 1
    [event] = harness.outbox(CANCELLED, events.OrderCancelled)
    assert (event.order_id, event.reason, [line.product_id for line in event.lines]) == \
        (order.id, "customer_cancelled", ["prd_rare"])
    assert harness.rows("orders", id=order.id)[0].stock_released_at is not None
    assert [(h.to_status, h.reason) for h in harness.rows("order_history", order_id=order.id)] == \
        [("pending_payment", "order_created"), ("cancelled", "customer_cancelled")]


def test_a_cancel_is_recorded_even_when_the_catalog_is_down_the_event_releases_the_stock_later(harness):
    order = harness.create()
    harness.catalog.release_fails = 1

    assert harness.cancel(order.id).status == "cancelled"

    assert len(harness.outbox(CANCELLED, events.OrderCancelled)) == 1
    assert harness.rows("orders", id=order.id)[0].stock_released_at is None


def test_a_cancelled_order_cannot_be_paid_and_a_paid_order_cannot_be_cancelled(harness):
    cancelled = harness.cancel(harness.create(key="k1").id)
    paid = harness.pay(harness.create(key="k2").id)

    with pytest.raises(RemoteError) as pay_refused:
        harness.pay(cancelled.id)
    with pytest.raises(RemoteError) as cancel_refused:
        harness.cancel(paid.id)

    assert pay_refused.value.code == cancel_refused.value.code == "invalid_order_transition"
    assert pay_refused.value.details["current_status"] == "cancelled"
    assert cancel_refused.value.details["current_status"] == "paid"
    assert harness.outbox(CANCELLED, events.OrderCancelled)[0].order_id == cancelled.id
    assert len(harness.outbox(CANCELLED, events.OrderCancelled)) == 1


def test_a_cancel_reason_must_be_a_code(harness):
    order = harness.create()

    with pytest.raises(RemoteError) as refused:
        harness.cancel(order.id, reason="Customer changed their mind!")

    assert refused.value.code == "invalid_order_request"
    assert harness.get(order.id).status == "pending_payment"


def test_a_store_clerk_cannot_act_on_another_stores_order(harness, callers):
    order = harness.create(store_id="sto_1")

    with pytest.raises(RemoteError) as refused:
        harness.pay(order.id, callers.clerk_elsewhere)

    assert refused.value.code == "store_not_allowed"
    assert harness.get(order.id).status == "pending_payment"


def test_store_staff_cannot_reach_an_online_order_by_id_either(harness, callers):
    online = harness.create()  # no store: it is not in any store clerk's list, so not reachable by id either

    with pytest.raises(RemoteError) as refused:
        harness.get(online.id, callers.clerk_elsewhere)

    assert refused.value.code == "store_not_allowed"
    assert harness.get(online.id).id == online.id  # merchant-wide callers still see it
