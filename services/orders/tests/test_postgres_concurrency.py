"""On PostgreSQL, under real concurrency: one payment per order, one order per idempotency key."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from weika.events.v1 import orders_pb2 as events
from weika_kit.errors import RemoteError

pytestmark = pytest.mark.postgres


def _all_at_once(count: int, action: Callable[[], Any]) -> list[Any]:
    """Run `action` in `count` threads released together; each outcome is a result or a RemoteError code."""
    barrier = threading.Barrier(count)
    outcomes: list[Any] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        try:
            outcome = action()
        except RemoteError as error:
            outcome = error.code
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_twenty_concurrent_payments_of_one_order_make_one_payment_and_one_order_paid(
        make_harness, fresh_postgres_database):
    harness = make_harness(fresh_postgres_database("orders_pay"), max_workers=20)
    order = harness.create()

    outcomes = _all_at_once(20, lambda: harness.pay(order.id).status)

    assert sorted(outcomes) == ["invalid_order_transition"] * 19 + ["paid"]
    assert harness.count("payments", order_id=order.id) == 1
    paid_events = harness.outbox("weika.orders.order-paid.v1", events.OrderPaid)
    assert [e.order_id for e in paid_events] == [order.id]
    assert harness.get(order.id).paid_amount == order.payable_amount


def test_concurrent_creates_with_one_key_place_one_order_and_reserve_once(make_harness, fresh_postgres_database):
    harness = make_harness(fresh_postgres_database("orders_create"), max_workers=10)

    outcomes = _all_at_once(10, lambda: harness.create(key="idem-burst").id)

    assert len(set(outcomes)) == 1 and outcomes[0].startswith("ord_")
    assert harness.count("orders") == 1 and harness.count("customers") == 1
    assert harness.catalog.stock_taken == {outcomes[0]: 1}
    assert len(harness.outbox("weika.orders.order-created.v1", events.OrderCreated)) == 1
