"""Refunds by the merchant's rules: partial by quantity, coupons voided first, refused naming a redeemed
coupon, resumed after a failure without an answer, one OrderRefunded per refund."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from weika.events.v1 import orders_pb2 as events
from weika.orders.v1 import orders_pb2 as pb
from weika_kit.context import Caller
from weika_kit.errors import RemoteError

REFUNDED = "weika.orders.order-refunded.v1"


def refund(harness, order_id, items=(), caller=None, reason=""):
    request = pb.RefundOrderRequest(order_id=order_id, reason=reason,
                                    items=[pb.OrderItem(product_id=p, quantity=q) for p, q in items])
    return harness.call(caller or harness_caller(), harness.stub.RefundOrder, request)


def harness_caller():
    return Caller("mch_tea", "test", staff_id="stf_1", role="owner")


def paid_order(harness, quantity=3):
    order = harness.create(items=(("prd_coupon", quantity),))
    harness.pay(order.id)
    return order


def test_a_partial_refund_voids_that_many_coupons_returns_a_share_and_keeps_the_order_paid(harness):
    order = paid_order(harness, quantity=3)  # 3 x 4500 = 13500, no discount

    result = refund(harness, order.id, [("prd_coupon", 1)])

    assert (result.status, result.amount, result.order_status) == ("succeeded", 4500, "paid")
    assert len(result.voided_coupon_ids) == 1
    [asked] = harness.redemption.requests
    assert (asked.order_id, asked.refund_id, [(x.product_id, x.quantity) for x in asked.lines]) == \
        (order.id, result.id, [("prd_coupon", 1)])
    [event] = harness.outbox(REFUNDED, events.OrderRefunded)
    assert (event.refund_id, event.refund_amount, [(x.product_id, x.quantity) for x in event.lines]) == \
        (result.id, 4500, [("prd_coupon", 1)])
    assert harness.get(order.id).status == "paid"


def test_refunding_the_rest_refunds_the_order_and_the_refunds_add_up_to_what_was_paid(harness):
    order = harness.create(items=(("prd_coupon", 3), ("prd_tea", 1)))  # 13500 + 12000 - 5000 discount = 20500
    harness.pay(order.id)

    first = refund(harness, order.id, [("prd_coupon", 1)])
    rest = refund(harness, order.id)

    assert first.amount == 4500 * 20500 // 25500
    assert first.amount + rest.amount == 20500
    assert rest.order_status == "refunded" and harness.get(order.id).status == "refunded"
    assert sorted((i.product_id, i.quantity) for i in rest.items) == [("prd_coupon", 2), ("prd_tea", 1)]
    assert len(harness.outbox(REFUNDED, events.OrderRefunded)) == 2


def test_a_refund_needing_a_redeemed_coupon_is_refused_naming_it_and_nothing_moves(harness):
    order = paid_order(harness, quantity=2)
    harness.redemption.units[(order.id, "prd_coupon")] = 2
    harness.redemption.redeemed[(order.id, "prd_coupon")] = ["cpn_redeemed_1"]

    with pytest.raises(RemoteError) as refused:
        refund(harness, order.id)

    assert (refused.value.code, refused.value.status) == ("refund_refused", grpc.StatusCode.FAILED_PRECONDITION)
    assert refused.value.details["coupon_id"] == "cpn_redeemed_1"
    assert refused.value.details["refused_because"] == "coupon_already_redeemed"
    assert harness.get(order.id).status == "paid"
    assert harness.outbox(REFUNDED, events.OrderRefunded) == []
    assert [r.status for r in harness.rows("refunds", order_id=order.id)] == ["refused"]
    assert [h.to_status for h in harness.rows("order_history", order_id=order.id)][-2:] == ["refund_requested", "paid"]


def test_a_refund_interrupted_without_an_answer_is_resumed_with_the_same_refund_id(harness):
    order = paid_order(harness, quantity=2)
    harness.redemption.fail_next = [grpc.StatusCode.UNAVAILABLE]

    with pytest.raises(RemoteError):
        refund(harness, order.id, [("prd_coupon", 1)])
    stuck = harness.get(order.id).status
    resumed = refund(harness, order.id, [("prd_coupon", 1)])

    assert stuck == "refund_requested"
    assert [r.refund_id for r in harness.redemption.requests] == [resumed.id, resumed.id]
    assert resumed.status == "succeeded" and harness.get(order.id).status == "paid"
    assert len(harness.outbox(REFUNDED, events.OrderRefunded)) == 1


def test_the_refund_window_closes_after_the_merchants_days(harness):
    order = paid_order(harness)
    harness.clock.advance(timedelta(days=8))  # default window: 7 days

    with pytest.raises(RemoteError) as refused:
        refund(harness, order.id)

    assert refused.value.code == "refund_not_allowed" and "window" in refused.value.message
    assert harness.get(order.id).status == "paid"


def test_partial_refunds_are_refused_when_the_merchant_turned_them_off(harness):
    harness.call(harness_caller(), harness.stub.PutOrderSettings, pb.OrderSettings(
        auto_cancel_minutes=30, auto_confirm_days=7, refund_window_days=7, allow_partial_refunds=False))
    order = paid_order(harness)

    with pytest.raises(RemoteError) as refused:
        refund(harness, order.id, [("prd_coupon", 1)])
    whole = refund(harness, order.id)

    assert refused.value.code == "refund_not_allowed" and whole.order_status == "refunded"


def test_more_than_was_bought_cannot_be_refunded(harness):
    order = paid_order(harness, quantity=2)
    refund(harness, order.id, [("prd_coupon", 1)])

    with pytest.raises(RemoteError) as refused:
        refund(harness, order.id, [("prd_coupon", 2)])

    assert (refused.value.code, refused.value.details["refundable"]) == ("invalid_refund_quantity", "1")


def test_an_unpaid_order_cannot_be_refunded(harness):
    order = harness.create()

    with pytest.raises(RemoteError) as refused:
        refund(harness, order.id)

    assert refused.value.code == "invalid_order_transition"
    assert refused.value.details["current_status"] == "pending_payment"


def card_order(harness, quantity=3):
    order = harness.create(items=(("prd_card", quantity),))  # 3 x 9000 = 27000 - 5000 discount = 22000
    harness.pay(order.id)
    return order


def test_refunding_undelivered_virtual_units_withdraws_them_from_the_catalog_first(harness):
    order = card_order(harness, quantity=3)
    harness.catalog.delivered[(order.id, "prd_card")] = 1  # one key shown, two units still waiting

    result = refund(harness, order.id, [("prd_card", 2)])

    assert (result.status, result.order_status) == ("succeeded", "paid")
    [asked] = harness.catalog.withdraw_requests
    assert (asked.order_id, asked.refund_id, [(x.product_id, x.quantity) for x in asked.lines]) == \
        (order.id, result.id, [("prd_card", 2)])
    assert harness.catalog.withdrawn[(order.id, "prd_card")] == 2
    [event] = harness.outbox(REFUNDED, events.OrderRefunded)
    assert (event.refund_id, [(x.product_id, x.quantity) for x in event.lines]) == (result.id, [("prd_card", 2)])


def test_a_refund_of_delivered_virtual_units_is_refused_and_nothing_moves(harness):
    order = card_order(harness, quantity=2)
    harness.catalog.delivered[(order.id, "prd_card")] = 1

    with pytest.raises(RemoteError) as refused:
        refund(harness, order.id)  # both units: one of them was shown to the buyer

    assert (refused.value.code, refused.value.status) == ("refund_refused", grpc.StatusCode.FAILED_PRECONDITION)
    assert refused.value.details["refused_because"] == "virtual_goods_delivered"
    assert (refused.value.details["product_id"], refused.value.details["delivered"]) == ("prd_card", "1")
    assert harness.get(order.id).status == "paid"
    assert harness.outbox(REFUNDED, events.OrderRefunded) == []
    assert harness.catalog.withdrawn.get((order.id, "prd_card"), 0) == 0
    assert [r.status for r in harness.rows("refunds", order_id=order.id)] == ["refused"]
    assert harness.redemption.requests == []  # nothing voided either
    assert refund(harness, order.id, [("prd_card", 1)]).status == "succeeded"  # the undelivered unit still can


def test_a_refund_whose_catalog_did_not_answer_is_resumed_and_withdraws_once(harness):
    order = card_order(harness, quantity=2)
    harness.catalog.withdraw_fails = [grpc.StatusCode.UNAVAILABLE]

    with pytest.raises(RemoteError):
        refund(harness, order.id, [("prd_card", 1)])
    stuck = harness.get(order.id).status
    resumed = refund(harness, order.id, [("prd_card", 1)])

    assert stuck == "refund_requested"
    assert [r.refund_id for r in harness.catalog.withdraw_requests] == [resumed.id, resumed.id]
    assert resumed.status == "succeeded" and harness.get(order.id).status == "paid"
    assert harness.catalog.withdrawn[(order.id, "prd_card")] == 1
    assert len(harness.outbox(REFUNDED, events.OrderRefunded)) == 1


def test_a_refund_without_virtual_lines_does_not_ask_the_catalog(harness):
    order = paid_order(harness, quantity=2)

    refund(harness, order.id, [("prd_coupon", 1)])

    assert harness.catalog.withdraw_requests == []


def mixed_order(harness):
    """2 game cards (their keys not shown yet) and 2 coupons, one of which the buyer redeemed."""
    order = harness.create(items=(("prd_card", 2), ("prd_coupon", 2)))
    harness.pay(order.id)
    harness.redemption.units[(order.id, "prd_coupon")] = 2
    harness.redemption.redeemed[(order.id, "prd_coupon")] = ["cpn_redeemed_1"]
    return order


def test_a_refund_refused_after_its_withdrawal_gives_the_virtual_units_back_before_the_order(harness):
    order = mixed_order(harness)

    with pytest.raises(RemoteError) as refused:
        refund(harness, order.id)  # everything: the cards are withdrawn, then the redeemed coupon refuses

    refund_id = refused.value.details["refund_id"]
    assert refused.value.code == "refund_refused"
    assert refused.value.details["refused_because"] == "coupon_already_redeemed"
    assert [r.refund_id for r in harness.catalog.withdraw_requests] == [refund_id]
    assert [(r.order_id, r.refund_id) for r in harness.catalog.restore_requests] == [(order.id, refund_id)]
    assert harness.catalog.withdrawn[(order.id, "prd_card")] == 0  # the buyer is owed both cards again
    assert harness.get(order.id).status == "paid"
    assert [r.status for r in harness.rows("refunds", order_id=order.id)] == ["refused"]
    assert harness.outbox(REFUNDED, events.OrderRefunded) == []
    # a new refund of the cards alone withdraws them under its own id
    assert refund(harness, order.id, [("prd_card", 2)]).status == "succeeded"
    assert harness.catalog.withdrawn[(order.id, "prd_card")] == 2


def test_a_restore_without_an_answer_keeps_the_refund_in_flight_and_a_retry_refuses_it_restoring_once(harness):
    order = mixed_order(harness)
    harness.catalog.restore_fails = [grpc.StatusCode.UNAVAILABLE]

    with pytest.raises(RemoteError) as unanswered:
        refund(harness, order.id)
    stuck = harness.get(order.id).status
    in_flight = [r.status for r in harness.rows("refunds", order_id=order.id)]
    with pytest.raises(RemoteError) as refused:
        refund(harness, order.id)  # resumes: withdrawal answered again, void refused again, restore retried

    refund_id = refused.value.details["refund_id"]
    assert unanswered.value.status == grpc.StatusCode.UNAVAILABLE
    assert (stuck, in_flight) == ("refund_requested", ["requested"])
    assert refused.value.code == "refund_refused"
    assert [r.refund_id for r in harness.catalog.withdraw_requests] == [refund_id, refund_id]
    assert [r.refund_id for r in harness.redemption.requests] == [refund_id, refund_id]
    assert [r.refund_id for r in harness.catalog.restore_requests] == [refund_id, refund_id]
    assert list(harness.catalog.restored) == [refund_id]
    assert harness.catalog.withdrawn[(order.id, "prd_card")] == 0
    assert harness.get(order.id).status == "paid"
    assert [r.status for r in harness.rows("refunds", order_id=order.id)] == ["refused"]
    assert harness.outbox(REFUNDED, events.OrderRefunded) == []


def test_a_refused_refund_without_virtual_lines_restores_nothing(harness):
    order = mixed_order(harness)

    with pytest.raises(RemoteError):
        refund(harness, order.id, [("prd_coupon", 2)])

    assert harness.catalog.withdraw_requests == harness.catalog.restore_requests == []
