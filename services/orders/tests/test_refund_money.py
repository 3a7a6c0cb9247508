"""Refunded money is tracked until the provider says where it is: WeChat Pay answers PROCESSING, then the
result comes as a signed, encrypted REFUND.* notification (verified like a payment's, applied once) or from
the sweeper's query; Alipay's synchronous refund is succeeded at once."""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from prometheus_client import REGISTRY
from sqlalchemy import update

from weika.orders.v1 import orders_pb2 as pb
from weika_kit import grpc_client
from weika_orders.adapters import tables
from weika_orders.config import PaymentSettings
from weika_orders.service_layer import payments

MCHID = "1900000109"


class RefundDesk:
    """The orders service with both channels configured against a running simulator, in live mode."""

    def __init__(self, harness, paysim, keys, caller, settings: PaymentSettings):
        self.h, self.paysim, self.caller, self.settings = harness, paysim, caller, settings
        wechat, alipay = paysim.register(keys, mchid=MCHID)
        self.wechat_config = wechat
        self.accounts = {}
        for channel, config in (("wechat", wechat), ("alipay", alipay)):
            answer = harness.call(caller, harness.stub.ConfigurePaymentChannel,
                                  pb.ConfigurePaymentChannelRequest(channel=channel, **{channel: config}))
            self.accounts[channel] = parse_qs(urlsplit(answer.notify_url).query)["account"][0]

    def wechat_refunds_answer(self, answer: str) -> None:
        response = requests.put(f"{self.paysim.url}/sim/wechat/merchants/{MCHID}/refunds", json={"answer": answer},
                                timeout=10)
        assert response.status_code == 200, response.text

    def deliver(self, channel, headers, body) -> pb.PaymentNotificationReply:
        return grpc_client.call(self.h.stub.HandlePaymentNotification, pb.PaymentNotification(
            channel=channel, headers=headers, body=body, account=self.accounts[channel]))

    def paid_order(self, channel: str) -> pb.Order:
        order = self.h.create(self.caller)
        self.h.pay(order.id, self.caller, channel=channel)
        [paid] = [self.deliver(channel, h, b) for h, b in self.paysim.notifications(channel, order.id)]
        assert paid.verdict == "paid"
        return order

    def refund(self, order_id: str) -> pb.Refund:
        return self.h.call(self.caller, self.h.stub.RefundOrder, pb.RefundOrderRequest(order_id=order_id))

    def refund_notifications(self, out_refund_no: str, **options) -> list[tuple[dict[str, str], bytes]]:
        """Signed, sealed refund notifications built by the simulator, not sent (the test delivers them)."""
        answer = self.paysim.post("/sim/wechat/refund-notify",
                                  {"out_refund_no": out_refund_no, "deliver": False, **options})
        return [(n["headers"], n["body"].encode()) for n in answer["notifications"]]

    def row(self, refund_id: str):
        [row] = self.h.rows("refunds", id=refund_id)
        return row

    def reasons(self, order_id: str) -> list[str]:
        answer = self.h.call(self.caller, self.h.stub.GetOrderHistory, pb.GetOrderHistoryRequest(order_id=order_id))
        return [t.reason for t in answer.transitions]

    def verdicts(self, order_id: str) -> list[tuple[str, str]]:
        return [(n.verdict, n.reason) for n in self.h.rows("payment_notifications", out_trade_no=order_id)]

    def accepted_minutes_ago(self, table: str, row_id: str, minutes: int) -> None:
        """As if the provider's last answer about this refund came `minutes` ago (the signing clock stays real)."""
        t = tables.metadata.tables[table]
        with self.h.db.engine.begin() as conn:
            conn.execute(update(t).where(t.c.id == row_id).values(
                provider_checked_at=self.h.clock() - timedelta(minutes=minutes)))


def counted(channel: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("weika_refund_outcomes_total", {"channel": channel, "outcome": outcome}) or 0.0


def _desk(make_harness, database, paysim, merchant_keys, caller) -> RefundDesk:
    url, migrated = database
    settings = PaymentSettings(paysim.url, "http://127.0.0.1:9")
    harness = make_harness(url, migrated=migrated, payment_settings=settings)
    return RefundDesk(harness, paysim, merchant_keys, caller, settings)


@pytest.fixture
def desk(make_harness, orders_database, paysim, merchant_keys, callers) -> RefundDesk:
    return _desk(make_harness, orders_database(), paysim, merchant_keys, callers.live)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def desk_on(request, make_harness, orders_database, paysim, merchant_keys, callers) -> RefundDesk:
    """The same desk on SQLite and on PostgreSQL."""
    return _desk(make_harness, orders_database(request.param, "orders_refund_money"), paysim, merchant_keys,
                 callers.live)


def test_a_processing_wechat_refund_succeeds_once_when_its_success_is_notified_twice(desk_on):
    desk_on.wechat_refunds_answer("PROCESSING")
    order = desk_on.paid_order("wechat")
    succeeded_before = counted("wechat", "succeeded")

    refund = desk_on.refund(order.id)
    processing = desk_on.row(refund.id)
    replies = [desk_on.deliver("wechat", h, b)
               for h, b in desk_on.refund_notifications(refund.id, refund_status="SUCCESS", repeat=2)]

    assert (refund.status, refund.provider_status, processing.provider_status) == ("succeeded", "processing",
                                                                                   "processing")
    trade = desk_on.paysim.sim.find_trade("wechat", order.id)
    assert trade.refund_notify_urls[refund.id].endswith(
        f"/v1/payments/wechat/notify?account={desk_on.accounts['wechat']}")
    assert [(r.http_status, r.verdict) for r in replies] == [(204, "refund_settled"), (204, "duplicate")]
    assert desk_on.row(refund.id).provider_status == "succeeded"
    # the order shows its refunds and where each one's money is
    [shown] = desk_on.h.get(order.id, desk_on.caller).refunds
    assert (shown.id, shown.status, shown.amount, shown.provider_status) == (
        refund.id, "succeeded", refund.amount, "succeeded")
    assert [(i.product_id, i.quantity) for i in shown.items] == [(i.product_id, i.quantity) for i in refund.items]
    assert desk_on.reasons(order.id).count("refund_money_returned") == 1
    assert desk_on.verdicts(order.id)[-2:] == [("refund_settled", "refund_success"),
                                               ("duplicate", "refund_already_succeeded")]
    assert counted("wechat", "succeeded") == succeeded_before + 1


@pytest.mark.parametrize("options, reason", [
    ({"tamper": "signature"}, "bad_signature"),
    ({"tamper": "body"}, "bad_signature"),
    ({"tamper": "foreign_key"}, "bad_signature"),
    ({"amount": 1}, "amount_mismatch"),
    ({"account": "1900000999"}, "merchant_mismatch"),
])
def test_a_forged_or_tampered_refund_notification_is_rejected_and_changes_nothing(desk, options, reason):
    desk.wechat_refunds_answer("PROCESSING")
    order = desk.paid_order("wechat")
    refund = desk.refund(order.id)
    history = desk.reasons(order.id)

    [(headers, body)] = desk.refund_notifications(refund.id, refund_status="SUCCESS", **options)
    reply = desk.deliver("wechat", headers, body)

    assert (reply.http_status, reply.verdict) == (400, "rejected")
    assert desk.row(refund.id).provider_status == "processing"
    assert desk.reasons(order.id) == history
    # A notification that fails the signature check is recorded without what it claims (it was not decrypted).
    assert [n.reason for n in desk.h.rows("payment_notifications", verdict="rejected")] == [reason]


@pytest.mark.parametrize("told, status, reason", [("ABNORMAL", "abnormal", "refund_abnormal"),
                                                  ("CLOSED", "closed", "refund_closed")])
def test_a_refund_the_provider_could_not_pay_out_is_marked_and_logged_as_an_error(desk_on, caplog, told, status,
                                                                                     reason):
    desk_on.wechat_refunds_answer("PROCESSING")
    order = desk_on.paid_order("wechat")
    refund = desk_on.refund(order.id)
    before = counted("wechat", status)

    with caplog.at_level(logging.ERROR, logger="weika_orders.service_layer.payments"):
        [reply] = [desk_on.deliver("wechat", h, b) for h, b in desk_on.refund_notifications(refund.id,
                                                                                            refund_status=told)]

    assert (reply.http_status, reply.verdict) == (204, "refund_settled")
    assert desk_on.row(refund.id).provider_status == status
    assert desk_on.reasons(order.id)[-1] == reason
    assert any(r.levelno == logging.ERROR and "merchant must act" in r.getMessage() for r in caplog.records)
    assert counted("wechat", status) == before + 1


def test_without_a_notification_the_sweeper_queries_with_backoff_until_the_provider_says_success(desk_on):
    desk_on.wechat_refunds_answer("PROCESSING")
    order = desk_on.paid_order("wechat")
    refund = desk_on.refund(order.id)
    db, settings = desk_on.h.db, desk_on.settings

    assert payments.query_processing_refunds(db, settings) == 0  # just accepted: not asked yet
    assert desk_on.row(refund.id).provider_queries == 0

    desk_on.accepted_minutes_ago("refunds", refund.id, 6)
    assert payments.query_processing_refunds(db, settings) == 0  # asked; the provider still says PROCESSING
    assert (desk_on.row(refund.id).provider_queries, desk_on.row(refund.id).provider_status) == (1, "processing")

    desk_on.refund_notifications(refund.id, refund_status="SUCCESS")  # the provider finishes; nobody is told
    desk_on.accepted_minutes_ago("refunds", refund.id, 6)
    assert payments.query_processing_refunds(db, settings) == 0  # second query waits 10 minutes
    assert desk_on.row(refund.id).provider_queries == 1

    desk_on.accepted_minutes_ago("refunds", refund.id, 11)
    stale = [m for m in _awaiting(desk_on) if m.id == refund.id]
    assert payments.query_processing_refunds(db, settings) == 1
    # Another replica working from the same stale list claims nothing and asks nothing.
    assert payments.query_refund(db, settings, desk_on.caller, stale[0], db.clock()) is None
    assert payments.query_processing_refunds(db, settings) == 0

    row = desk_on.row(refund.id)
    assert (row.provider_status, row.provider_queries) == ("succeeded", 2)
    assert desk_on.reasons(order.id).count("refund_money_returned") == 1


def test_a_genuine_refund_notification_for_a_refund_that_is_not_ours_is_rejected(desk):
    from weika_orders.adapters import providers
    from weika_orders.domain.payment_channels import WechatPayConfig

    order = desk.paid_order("wechat")
    c = desk.wechat_config
    config = WechatPayConfig(c.mchid, c.appid, c.merchant_serial_no, c.merchant_private_key_pem, c.api_v3_key,
                             c.platform_public_key_pem, c.platform_serial_no)
    # Someone refunded through the merchant's WeChat account directly, outside Weika.
    providers.wechat_refund(desk.paysim.url, config, out_trade_no=order.id, out_refund_no="rfd_elsewhere",
                            refund=100, total=order.payable_amount, notify_url="http://127.0.0.1:9/x",
                            now=desk.h.clock())

    [reply] = [desk.deliver("wechat", h, b) for h, b in desk.refund_notifications("rfd_elsewhere")]

    assert (reply.http_status, reply.verdict) == (400, "rejected")
    assert desk.verdicts(order.id)[-1] == ("rejected", "unknown_refund")
    assert "refund_money_returned" not in desk.reasons(order.id)


def _awaiting(desk):
    from weika_orders.adapters.payments_repository import refunds_awaiting_provider

    with desk.h.db.unit_of_work() as uow:
        return refunds_awaiting_provider(uow, desk.h.clock())


@pytest.mark.parametrize("channel", ["alipay", "wechat"])
def test_a_synchronous_refund_is_succeeded_at_once_and_never_queried(desk, channel):
    order = desk.paid_order(channel)  # the simulator's WeChat answers SUCCESS unless told otherwise
    before = counted(channel, "succeeded")

    refund = desk.refund(order.id)
    desk.accepted_minutes_ago("refunds", refund.id, 120)

    assert (refund.provider_status, desk.row(refund.id).provider_status) == ("succeeded", "succeeded")
    assert payments.query_processing_refunds(desk.h.db, desk.settings) == 0
    assert desk.row(refund.id).provider_queries == 0
    assert counted(channel, "succeeded") == before + 1


def test_a_stray_payment_returned_as_processing_is_settled_by_its_notification(desk):
    desk.wechat_refunds_answer("PROCESSING")
    order = desk.h.create(desk.caller)
    desk.h.pay(order.id, desk.caller, channel="wechat")
    desk.h.cancel(order.id, desk.caller)
    [late] = [desk.deliver("wechat", h, b) for h, b in desk.paysim.notifications("wechat", order.id)]
    [stray] = desk.h.rows("stray_payments", order_id=order.id)
    shown = [r.provider_status for r in desk.h.get(order.id, desk.caller).returned_payments]

    [reply] = [desk.deliver("wechat", h, b) for h, b in desk.refund_notifications(stray.refund_no)]

    assert late.verdict == "not_payable" and (stray.status, stray.provider_status) == ("refunded", "processing")
    assert shown == ["processing"]
    assert reply.verdict == "refund_settled"
    assert [r.provider_status for r in desk.h.get(order.id, desk.caller).returned_payments] == ["succeeded"]
    assert desk.reasons(order.id)[-1] == "refund_money_returned"
