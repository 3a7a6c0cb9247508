"""On PostgreSQL, under real concurrency: two replicas' timers cancel each due order once; a burst of the same
provider notification pays the order once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from weika.events.v1 import orders_pb2 as events
from weika.orders.v1 import orders_pb2 as pb
from weika_kit import grpc_client
from weika_kit.db import Database
from weika_orders.config import PaymentSettings
from weika_orders.service_layer.timers import cancel_unpaid_orders

pytestmark = pytest.mark.postgres


def test_two_replicas_racing_the_auto_cancel_timer_cancel_each_order_exactly_once(make_harness,
                                                                                 fresh_postgres_database):
    url = fresh_postgres_database("orders_timers")
    harness = make_harness(url)
    orders = [harness.create(key=f"k{n}", external_id=f"VIP-{n}").id for n in range(8)]
    harness.clock.advance(timedelta(minutes=31))
    # A second replica: its own Database handle (own connection pool) on the same database and clock.
    replica = Database(url, service="orders", clock=harness.clock)
    barrier = threading.Barrier(2)
    results: dict[str, list[str]] = {}

    def run(name: str, db: Database) -> None:
        barrier.wait()
        results[name] = cancel_unpaid_orders(db, harness.upstreams.catalog)

    threads = [threading.Thread(target=run, args=(name, db)) for name, db in (("a", harness.db), ("b", replica))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        replica.dispose()

    assert sorted(results["a"] + results["b"]) == sorted(orders)
    cancelled = harness.outbox("weika.orders.order-cancelled.v1", events.OrderCancelled)
    assert sorted(e.order_id for e in cancelled) == sorted(orders)
    assert harness.count("order_history", to_status="cancelled") == len(orders)
    assert all(harness.get(order_id).status == "cancelled" for order_id in orders)


def test_a_burst_of_one_notification_pays_the_order_once(make_harness, fresh_postgres_database, paysim,
                                                         merchant_keys, callers):
    harness = make_harness(fresh_postgres_database("orders_notify"), max_workers=10,
                           payment_settings=PaymentSettings(paysim.url, "http://127.0.0.1:9"))
    wechat, _ = paysim.register(merchant_keys)
    configured = harness.call(callers.live, harness.stub.ConfigurePaymentChannel,
                              pb.ConfigurePaymentChannelRequest(channel="wechat", wechat=wechat))
    account = configured.notify_url.rsplit("account=", 1)[1]
    order = harness.create(callers.live)
    harness.pay(order.id, callers.live, channel="wechat")
    [(headers, body)] = paysim.notifications("wechat", order.id)
    barrier = threading.Barrier(10)
    verdicts: list[str] = []

    def deliver() -> None:
        barrier.wait()
        reply = grpc_client.call(harness.stub.HandlePaymentNotification, pb.PaymentNotification(
            channel="wechat", headers=headers, body=body, account=account))
        verdicts.append(reply.verdict)

    threads = [threading.Thread(target=deliver) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(verdicts) == ["duplicate"] * 9 + ["paid"]
    assert harness.count("payments", order_id=order.id) == 1
    assert len(harness.outbox("weika.orders.order-paid.v1", events.OrderPaid)) == 1
