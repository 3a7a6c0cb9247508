"""Money a provider notifies for an order that can no longer be paid (cancelled, or paid through the other
channel) goes back to the customer through that channel, exactly once: recorded with the not_payable verdict,
refunded after commit, retried by the sweeper with a cap, and shown on the order and its history."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from prometheus_client import REGISTRY

from weika.orders.v1 import orders_pb2 as pb
from weika_kit import grpc_client
from weika_kit.context import Caller
from weika_orders.config import PaymentSettings
from weika_orders.service_layer import payments
from weika_orders.service_layer.sweeper import run_sweeper

DEAD_PROVIDER = "http://127.0.0.1:9"  # nothing listens there: every refund call fails without an answer
ACKNOWLEDGED = {"wechat": (204, b""), "alipay": (200, b"success")}


class Shop:
    """The orders service with WeChat Pay and Alipay configured against a running simulator, in live mode."""

    def __init__(self, harness, paysim, keys, caller, settings: PaymentSettings):
        self.h, self.paysim, self.caller, self.settings = harness, paysim, caller, settings
        wechat, alipay = paysim.register(keys)
        self.accounts = {}
        for channel, config in (("wechat", wechat), ("alipay", alipay)):
            answer = harness.call(caller, harness.stub.ConfigurePaymentChannel,
                                  pb.ConfigurePaymentChannelRequest(channel=channel, **{channel: config}))
            self.accounts[channel] = parse_qs(urlsplit(answer.notify_url).query)["account"][0]

    def order_waiting_for(self, *channels: str) -> pb.Order:
        order = self.h.create(self.caller)
        for channel in channels:
            self.h.pay(order.id, self.caller, channel=channel)
        return order

    def cancelled_order_waiting_for(self, channel: str) -> pb.Order:
        order = self.order_waiting_for(channel)
        self.h.cancel(order.id, self.caller)
        return order

    def deliver(self, channel, headers, body) -> pb.PaymentNotificationReply:
        return grpc_client.call(self.h.stub.HandlePaymentNotification, pb.PaymentNotification(
            channel=channel, headers=headers, body=body, account=self.accounts[channel]))

    def customer_pays(self, channel, order_id, **options) -> list[pb.PaymentNotificationReply]:
        return [self.deliver(channel, headers, body)
                for headers, body in self.paysim.notifications(channel, order_id, **options)]

    def refunds_at_provider(self, channel, order_id) -> dict[str, int]:
        return dict(self.paysim.sim.find_trade(channel, order_id).refunds)

    def stray(self, order_id):
        [row] = self.h.rows("stray_payments", order_id=order_id)
        return row

    def history(self, order_id) -> list[tuple[str, str, str, str]]:
        answer = self.h.call(self.caller, self.h.stub.GetOrderHistory, pb.GetOrderHistoryRequest(order_id=order_id))
        return [(t.from_status, t.to_status, t.actor, t.reason) for t in answer.transitions]

    def returned(self, order_id) -> list[tuple[str, int, str]]:
        return [(r.channel, r.amount, r.status) for r in self.h.get(order_id, self.caller).returned_payments]

    def provider_reachable(self, reachable: bool) -> None:
        # The servicer holds this same settings object: refunds go where it points from now on.
        object.__setattr__(self.settings, "simulator_url", self.paysim.url if reachable else DEAD_PROVIDER)


def counted(channel: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("weika_stray_payments_total", {"channel": channel, "outcome": outcome}) or 0.0


def _shop(make_harness, database, paysim, merchant_keys, caller) -> Shop:
    url, migrated = database
    settings = PaymentSettings(paysim.url, "http://127.0.0.1:9")
    harness = make_harness(url, migrated=migrated, max_workers=10, payment_settings=settings)
    return Shop(harness, paysim, merchant_keys, caller, settings)


@pytest.fixture
def shop(make_harness, orders_database, paysim, merchant_keys, callers) -> Shop:
    return _shop(make_harness, orders_database(), paysim, merchant_keys, callers.live)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shop_on(request, make_harness, orders_database, paysim, merchant_keys, callers) -> Shop:
    """The same shop on SQLite and on PostgreSQL."""
    return _shop(make_harness, orders_database(request.param, "orders_stray"), paysim, merchant_keys, callers.live)


@pytest.mark.parametrize("channel", ["wechat", "alipay"])
def test_a_payment_for_a_cancelled_order_is_acknowledged_and_refunded_in_full(shop_on, channel):
    order = shop_on.cancelled_order_waiting_for(channel)
    refunded_before = counted(channel, "refunded")

    [reply] = shop_on.customer_pays(channel, order.id)

    assert (reply.http_status, reply.body, reply.verdict) == (*ACKNOWLEDGED[channel], "not_payable")
    stray = shop_on.stray(order.id)
    assert (stray.status, stray.amount, stray.attempts, stray.channel) == ("refunded", order.payable_amount, 1,
                                                                          channel)
    assert shop_on.refunds_at_provider(channel, order.id) == {stray.refund_no: order.payable_amount}
    after = shop_on.h.get(order.id, shop_on.caller)
    assert (after.status, after.paid_amount) == ("cancelled", 0)
    assert shop_on.returned(order.id) == [(channel, order.payable_amount, "refunded")]
    assert shop_on.history(order.id)[-2:] == [
        ("cancelled", "cancelled", f"provider:{channel}", "late_payment_refunding"),
        ("cancelled", "cancelled", f"provider:{channel}", "late_payment_refunded")]
    assert shop_on.h.count("payments") == 0
    assert counted(channel, "refunded") == refunded_before + 1


def test_the_same_stray_payment_notified_again_and_concurrently_is_refunded_once(shop_on):
    order = shop_on.cancelled_order_waiting_for("wechat")
    # Two notifications of the one transaction (the provider's redelivery), each delivered several times at once.
    deliveries = shop_on.paysim.notifications("wechat", order.id, repeat=2) * 4
    barrier = threading.Barrier(len(deliveries))
    verdicts: list[str] = []

    def deliver(headers, body) -> None:
        barrier.wait()
        verdicts.append(shop_on.deliver("wechat", headers, body).verdict)

    threads = [threading.Thread(target=deliver, args=d) for d in deliveries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    [late] = shop_on.customer_pays("wechat", order.id)

    assert sorted(verdicts) == ["duplicate"] * 7 + ["not_payable"]
    assert late.verdict == "duplicate" and late.http_status == 204
    stray = shop_on.stray(order.id)
    assert shop_on.refunds_at_provider("wechat", order.id) == {stray.refund_no: order.payable_amount}
    assert stray.status == "refunded"
    reasons = [reason for *_, reason in shop_on.history(order.id)]
    assert reasons.count("late_payment_refunding") == 1 and reasons.count("late_payment_refunded") == 1
    recorded = [(n.verdict, n.reason) for n in shop_on.h.rows("payment_notifications", out_trade_no=order.id)]
    assert sorted(recorded) == [("duplicate", "already_returning")] * 8 + [("not_payable", "order_cancelled")]


def test_a_refund_the_provider_cannot_take_stays_pending_until_the_sweeper_returns_it_once(shop_on):
    order = shop_on.cancelled_order_waiting_for("alipay")
    shop_on.provider_reachable(False)

    [reply] = shop_on.customer_pays("alipay", order.id)

    assert (reply.http_status, reply.body, reply.verdict) == (200, b"success", "not_payable")
    stray = shop_on.stray(order.id)
    assert (stray.status, stray.attempts) == ("pending", 1)
    assert stray.last_error.startswith("payment_provider_unavailable")
    assert shop_on.refunds_at_provider("alipay", order.id) == {}
    assert shop_on.returned(order.id) == [("alipay", order.payable_amount, "pending")]

    shop_on.provider_reachable(True)
    assert payments.retry_stray_refunds(shop_on.h.db, shop_on.settings) == 0  # its backoff has not passed
    assert shop_on.refunds_at_provider("alipay", order.id) == {}

    shop_on.h.clock.advance(payments.STRAY_REFUND_FIRST_RETRY + timedelta(seconds=1))
    stop = threading.Event()
    sweeper = threading.Thread(target=run_sweeper, args=(shop_on.h.db, shop_on.h.upstreams.catalog, stop, 0.05),
                               kwargs={"payment_settings": shop_on.settings})
    sweeper.start()
    try:
        deadline = time.monotonic() + 30
        while shop_on.stray(order.id).status == "pending" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        sweeper.join(timeout=30)
    shop_on.h.clock.advance(timedelta(hours=2))
    assert payments.retry_stray_refunds(shop_on.h.db, shop_on.settings) == 0  # nothing pending any more

    stray = shop_on.stray(order.id)
    assert (stray.status, stray.attempts) == ("refunded", 2)
    assert shop_on.refunds_at_provider("alipay", order.id) == {stray.refund_no: order.payable_amount}
    assert shop_on.returned(order.id) == [("alipay", order.payable_amount, "refunded")]
    assert [reason for *_, reason in shop_on.history(order.id)][-2:] == ["late_payment_refunding",
                                                                         "late_payment_refunded"]


def test_a_stray_refund_that_keeps_failing_is_given_up_after_the_cap_and_marked_failed(shop):
    order = shop.cancelled_order_waiting_for("wechat")
    shop.provider_reachable(False)
    failed_before = counted("wechat", "failed")
    shop.customer_pays("wechat", order.id)

    for _ in range(payments.MAX_STRAY_REFUND_ATTEMPTS + 2):
        shop.h.clock.advance(payments.STRAY_REFUND_MAX_BACKOFF + timedelta(seconds=1))
        payments.retry_stray_refunds(shop.h.db, shop.settings)

    stray = shop.stray(order.id)
    assert (stray.status, stray.attempts) == ("failed", payments.MAX_STRAY_REFUND_ATTEMPTS)
    assert stray.last_error.startswith("payment_provider_unavailable")
    assert shop.history(order.id)[-1] == ("cancelled", "cancelled", "provider:wechat", "late_payment_refund_failed")
    assert shop.returned(order.id) == [("wechat", order.payable_amount, "failed")]
    assert counted("wechat", "failed") == failed_before + 1


def test_a_wechat_payment_after_the_order_was_paid_by_alipay_is_returned_and_the_order_stays_paid(shop_on):
    order = shop_on.order_waiting_for("wechat", "alipay")
    [paid] = shop_on.customer_pays("alipay", order.id)

    [reply] = shop_on.customer_pays("wechat", order.id)

    assert paid.verdict == "paid"
    assert (reply.http_status, reply.verdict) == (204, "not_payable")
    stray = shop_on.stray(order.id)
    assert (stray.channel, stray.status) == ("wechat", "refunded")
    assert shop_on.refunds_at_provider("wechat", order.id) == {stray.refund_no: order.payable_amount}
    assert shop_on.refunds_at_provider("alipay", order.id) == {}
    after = shop_on.h.get(order.id, shop_on.caller)
    assert (after.status, after.channel, after.paid_amount) == ("paid", "alipay", order.payable_amount)
    assert [(p.channel, p.amount) for p in shop_on.h.rows("payments", order_id=order.id)] == \
        [("alipay", order.payable_amount)]
    assert shop_on.returned(order.id) == [("wechat", order.payable_amount, "refunded")]
    assert shop_on.history(order.id)[-2:] == [("paid", "paid", "provider:wechat", "late_payment_refunding"),
                                              ("paid", "paid", "provider:wechat", "late_payment_refunded")]


def test_a_replica_with_a_stale_work_list_claims_no_second_refund_attempt(shop_on):
    order = shop_on.cancelled_order_waiting_for("wechat")
    shop_on.provider_reachable(False)
    shop_on.customer_pays("wechat", order.id)
    shop_on.provider_reachable(True)
    shop_on.h.clock.advance(timedelta(minutes=5))
    seen = shop_on.stray(order.id)  # what both replicas read before either claimed it
    idle_before = shop_on.h.clock() - payments.STRAY_REFUND_FIRST_RETRY
    tenant = Caller(seen.merchant_id, seen.mode, role="system")

    first = payments.refund_stray_payment(shop_on.h.db, shop_on.settings, tenant, seen.id, seen.attempts, idle_before)
    second = payments.refund_stray_payment(shop_on.h.db, shop_on.settings, tenant, seen.id, seen.attempts,
                                           idle_before)

    assert (first, second) == ("refunded", None)
    stray = shop_on.stray(order.id)
    assert (stray.status, stray.attempts) == ("refunded", 2)
    assert shop_on.refunds_at_provider("wechat", order.id) == {stray.refund_no: order.payable_amount}
