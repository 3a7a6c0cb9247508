"""Timers: unpaid orders cancel after auto_cancel_minutes with their stock back; shipped orders complete after
auto_confirm_days; each fires exactly once, whatever runs them again."""

from __future__ import annotations

from datetime import timedelta

from weika.events.v1 import orders_pb2 as events
from weika.orders.v1 import orders_pb2 as pb
from weika_orders.service_layer.timers import cancel_unpaid_orders, complete_confirmed_orders

CANCELLED = "weika.orders.order-cancelled.v1"
COMPLETED = "weika.orders.order-completed.v1"


def test_an_unpaid_order_cancels_after_the_merchants_minutes_and_its_stock_returns(harness, callers):
    harness.call(callers.test, harness.stub.PutOrderSettings, pb.OrderSettings(auto_cancel_minutes=10,
                                                                               auto_confirm_days=7))
    order = harness.create(items=(("prd_rare", 1),))
    assert harness.catalog.products["prd_rare"].stock == 0

    harness.clock.advance(timedelta(minutes=9))
    early = cancel_unpaid_orders(harness.db, harness.upstreams.catalog)
    harness.clock.advance(timedelta(minutes=2))
    due = cancel_unpaid_orders(harness.db, harness.upstreams.catalog)
    again = cancel_unpaid_orders(harness.db, harness.upstreams.catalog)

    assert (early, due, again) == ([], [order.id], [])
    assert harness.get(order.id).status == "cancelled"
    assert harness.catalog.products["prd_rare"].stock == 1
    [event] = harness.outbox(CANCELLED, events.OrderCancelled)
    assert (event.order_id, event.reason) == (order.id, "payment_timeout")
    assert [(h.actor, h.reason) for h in harness.rows("order_history", order_id=order.id)][-1] == \
        ("system", "payment_timeout")


def test_a_paid_order_is_never_cancelled_by_the_timer(harness):
    order = harness.create()
    harness.pay(order.id)
    harness.clock.advance(timedelta(days=1))

    assert cancel_unpaid_orders(harness.db, harness.upstreams.catalog) == []
    assert harness.get(order.id).status == "paid"


def test_a_shipped_order_completes_after_the_merchants_days_once(harness, callers):
    order = harness.create(items=(("prd_tea", 1),))
    harness.pay(order.id)
    harness.call(callers.test, harness.stub.ShipOrder,
                 pb.ShipOrderRequest(order_id=order.id, carrier="SF", tracking_number="SF123456"))

    harness.clock.advance(timedelta(days=6))
    early = complete_confirmed_orders(harness.db)
    harness.clock.advance(timedelta(days=2))
    due = complete_confirmed_orders(harness.db)
    again = complete_confirmed_orders(harness.db)

    assert (early, due, again) == ([], [order.id], [])
    assert harness.get(order.id).status == "completed"
    assert [e.order_id for e in harness.outbox(COMPLETED, events.OrderCompleted)] == [order.id]


def test_a_restart_catches_up_on_what_fell_due_while_it_was_down(make_harness, migrated_sqlite_file, tmp_path):
    import shutil

    path = tmp_path / "orders.sqlite3"
    shutil.copyfile(migrated_sqlite_file, path)
    first = make_harness(f"sqlite:///{path}", migrated=True)
    order = first.create()
    first.close()  # the replica stops before the order falls due

    restarted = make_harness(f"sqlite:///{path}", migrated=True)
    restarted.clock.advance(timedelta(minutes=31))

    assert cancel_unpaid_orders(restarted.db, restarted.upstreams.catalog) == [order.id]
    assert len(restarted.outbox(CANCELLED, events.OrderCancelled)) == 1
