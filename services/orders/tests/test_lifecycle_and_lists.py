"""After payment: shipping, history, illegal transitions naming the current status, lists with filters and
cursors, status counts, order settings."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from weika.orders.v1 import orders_pb2 as pb
from weika_kit.errors import RemoteError
from weika_kit.protos import to_timestamp


def ship(harness, order_id, caller, carrier="SF Express", tracking="SF1234567890"):
    return harness.call(caller, harness.stub.ShipOrder,
                        pb.ShipOrderRequest(order_id=order_id, carrier=carrier, tracking_number=tracking))


def history(harness, order_id, caller):
    return harness.call(caller, harness.stub.GetOrderHistory, pb.GetOrderHistoryRequest(order_id=order_id))


def test_a_paid_physical_order_awaits_shipment_then_ships_with_its_logistics(harness, callers):
    order = harness.create(items=(("prd_tea", 1),))
    harness.pay(order.id)

    shipped = ship(harness, order.id, callers.test)

    assert shipped.status == "shipped"
    assert (shipped.shipment.carrier, shipped.shipment.tracking_number) == ("SF Express", "SF1234567890")
    assert shipped.shipment.HasField("shipped_at")
    steps = [(t.from_status, t.to_status, t.actor, t.reason) for t in history(harness, order.id, callers.test).transitions]
    assert steps == [("creating", "pending_payment", "stf_1", "order_created"),
                     ("pending_payment", "paid", "stf_1", "paid_simulated"),
                     ("paid", "awaiting_shipment", "system", "physical_goods"),
                     ("awaiting_shipment", "shipped", "stf_1", "shipped")]


def test_shipping_an_unpaid_order_is_409_naming_the_current_status(harness, callers):
    order = harness.create(items=(("prd_tea", 1),))

    with pytest.raises(RemoteError) as refused:
        ship(harness, order.id, callers.test)

    assert (refused.value.code, refused.value.status) == ("invalid_order_transition",
                                                          grpc.StatusCode.FAILED_PRECONDITION)
    assert refused.value.details["current_status"] == "pending_payment"
    assert harness.count("shipments") == 0


def test_shipping_twice_is_refused_and_keeps_the_first_tracking_number(harness, callers):
    order = harness.create(items=(("prd_tea", 1),))
    harness.pay(order.id)
    ship(harness, order.id, callers.test)

    with pytest.raises(RemoteError) as refused:
        ship(harness, order.id, callers.test, tracking="YT0000000000")

    assert refused.value.details["current_status"] == "shipped"
    assert harness.get(order.id).shipment.tracking_number == "SF1234567890"


def test_an_order_of_coupons_only_has_nothing_to_ship(harness, callers):
    order = harness.create()
    harness.pay(order.id)

    with pytest.raises(RemoteError) as refused:
        ship(harness, order.id, callers.test)

    assert refused.value.code == "nothing_to_ship"


def test_a_tracking_number_must_look_like_one(harness, callers):
    order = harness.create(items=(("prd_tea", 1),))
    harness.pay(order.id)

    with pytest.raises(RemoteError) as refused:
        ship(harness, order.id, callers.test, tracking="<script>")

    assert (refused.value.code, refused.value.details["field"]) == ("invalid_order_request", "tracking_number")


def test_another_merchants_order_history_is_not_found(harness, callers):
    order = harness.create()

    with pytest.raises(RemoteError) as refused:
        history(harness, order.id, callers.other_merchant)

    assert refused.value.code == "order_not_found"


def list_orders(harness, caller, **filters):
    return harness.call(caller, harness.stub.ListOrders, pb.ListOrdersRequest(**filters))


def test_lists_filter_by_status_store_customer_product_and_date(harness, callers):
    first = harness.create(key="a", items=(("prd_tea", 1),), store_id="sto_1", external_id="VIP-1")
    harness.clock.advance(timedelta(hours=1))
    second = harness.create(key="b", items=(("prd_coupon", 1),), store_id="sto_2", external_id="VIP-2")
    harness.pay(second.id)
    harness.create(callers.other_merchant, key="c")

    def ids(**filters):
        return [o.id for o in list_orders(harness, callers.test, **filters).orders]

    assert ids() == [second.id, first.id]
    assert ids(status="paid") == [second.id]
    assert ids(store_id="sto_1") == [first.id]
    assert ids(customer_id=first.customer.customer_id) == [first.id]
    assert ids(product_id="prd_coupon") == [second.id]
    boundary = to_timestamp(harness.clock.now)
    assert ids(created_from=boundary) == [second.id] and ids(created_to=boundary) == [first.id]


def test_a_listed_order_is_the_same_whole_order_a_get_returns(harness, callers):
    """Lists read a page of orders in a few queries: each order keeps its own lines, customer, shipment and
    refunds, exactly as GetOrder shows it."""
    tea = harness.create(key="a", items=(("prd_tea", 2), ("prd_rare", 1)), store_id="sto_1", external_id="VIP-1")
    harness.pay(tea.id)
    ship(harness, tea.id, callers.test)
    harness.clock.advance(timedelta(minutes=1))
    coupons = harness.create(key="b", items=(("prd_coupon", 2),), external_id="VIP-2", phone="13900000000")
    harness.pay(coupons.id)
    harness.call(callers.test, harness.stub.RefundOrder,
                 pb.RefundOrderRequest(order_id=coupons.id, items=[pb.OrderItem(product_id="prd_coupon", quantity=1)]))

    listed = list_orders(harness, callers.test).orders

    assert [o.id for o in listed] == [coupons.id, tea.id]
    for order in listed:
        assert order == harness.get(order.id)
    assert [line.product_id for line in listed[1].lines] == ["prd_rare", "prd_tea"]
    assert listed[1].shipment.tracking_number and not listed[0].HasField("shipment")
    assert [(r.status, [(i.product_id, i.quantity) for i in r.items]) for r in listed[0].refunds] == [
        ("succeeded", [("prd_coupon", 1)])]
    assert listed[1].refunds == [] and listed[0].customer.external_id == "VIP-2"


def test_pages_follow_the_cursor_without_gaps_or_repeats(harness, callers):
    created = []
    for n in range(5):
        created.append(harness.create(key=f"k{n}", external_id=f"VIP-{n}").id)
        harness.clock.advance(timedelta(seconds=1 if n != 2 else 0))  # two orders share a created_at

    seen, cursor = [], ""
    while True:
        page = list_orders(harness, callers.test, page_size=2, cursor=cursor)
        seen += [o.id for o in page.orders]
        cursor = page.next_cursor
        if not cursor:
            break

    assert sorted(seen) == sorted(created) and len(seen) == 5


def test_a_forged_cursor_is_refused(harness, callers):
    with pytest.raises(RemoteError) as refused:
        list_orders(harness, callers.test, cursor="not-a-cursor")

    assert refused.value.code == "invalid_cursor"


def test_counts_give_every_status_tab(harness, callers):
    harness.pay(harness.create(key="a").id)
    harness.create(key="b")
    harness.cancel(harness.create(key="c").id)

    counts = harness.call(callers.test, harness.stub.CountOrders, pb.ListOrdersRequest())

    assert counts.total == 3
    assert (counts.by_status["paid"], counts.by_status["pending_payment"], counts.by_status["cancelled"]) == (1, 1, 1)
    assert counts.by_status["shipped"] == 0


def test_order_settings_have_defaults_and_are_per_merchant_and_mode(harness, callers):
    defaults = harness.call(callers.test, harness.stub.GetOrderSettings, pb.GetOrderSettingsRequest())

    saved = harness.call(callers.test, harness.stub.PutOrderSettings, pb.OrderSettings(
        auto_cancel_minutes=15, auto_confirm_days=3, refund_window_days=30, allow_partial_refunds=True))

    assert (defaults.auto_cancel_minutes, defaults.auto_confirm_days) == (30, 7)
    assert (saved.auto_cancel_minutes, saved.auto_confirm_days, saved.refund_window_days) == (15, 3, 30)
    live = harness.call(callers.live, harness.stub.GetOrderSettings, pb.GetOrderSettingsRequest())
    assert live.auto_cancel_minutes == 30


def test_settings_out_of_range_are_refused_naming_the_field(harness, callers):
    with pytest.raises(RemoteError) as refused:
        harness.call(callers.test, harness.stub.PutOrderSettings,
                     pb.OrderSettings(auto_cancel_minutes=0, auto_confirm_days=7))

    assert (refused.value.code, refused.value.details["field"]) == ("invalid_order_settings", "auto_cancel_minutes")


def test_store_staff_list_only_their_stores_orders_and_pages_stay_full(harness, callers):
    from weika_kit.context import Caller

    clerk = Caller("mch_tea", "test", staff_id="stf_3", role="clerk", store_ids=("sto_1",))
    mine = [harness.create(key=f"m{n}", store_id="sto_1", external_id=f"A{n}").id for n in range(3)]
    for n in range(3):
        harness.create(key=f"o{n}", store_id="sto_2", external_id=f"B{n}")

    first = list_orders(harness, clerk, page_size=2)
    rest = list_orders(harness, clerk, page_size=2, cursor=first.next_cursor)

    assert len(first.orders) == 2 and sorted(o.id for o in [*first.orders, *rest.orders]) == sorted(mine)
    with pytest.raises(RemoteError) as refused:
        list_orders(harness, clerk, store_id="sto_2")
    assert refused.value.code == "store_not_allowed"
