"""Payment channels: settings encrypted and masked, paying through the simulated providers, and notifications
verified exactly as WeChat Pay v3 and Alipay require, paying an order once whatever arrives."""

from __future__ import annotations

import shutil
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask, Response, request

from weika.events.v1 import orders_pb2 as events
from weika.orders.v1 import orders_pb2 as pb
from weika_kit import grpc_client
from weika_kit.errors import RemoteError
from weika_orders.config import PaymentSettings

PAID = "weika.orders.order-paid.v1"


class Channels:
    """The orders service with both channels configured against a running simulator."""

    def __init__(self, harness, paysim, keys, caller):
        self.h, self.paysim, self.caller = harness, paysim, caller
        self.wechat_config, self.alipay_config = paysim.register(keys)
        self.accounts = {}
        for channel, config in (("wechat", self.wechat_config), ("alipay", self.alipay_config)):
            answer = self.configure(channel, config)
            self.accounts[channel] = parse_qs(urlsplit(answer.notify_url).query)["account"][0]

    def configure(self, channel, config):
        request_ = pb.ConfigurePaymentChannelRequest(channel=channel, **{channel: config})
        return self.h.call(self.caller, self.h.stub.ConfigurePaymentChannel, request_)

    def order(self, key="idem-1"):
        return self.h.create(self.caller, key=key)

    def start(self, order_id, channel):
        return self.h.pay(order_id, self.caller, channel=channel)

    def deliver(self, channel, headers, body, account=None):
        request_ = pb.PaymentNotification(channel=channel, headers=headers, body=body,
                                          account=account or self.accounts[channel])
        return grpc_client.call(self.h.stub.HandlePaymentNotification, request_)

    def pay_via_provider(self, order_id, channel, **options):
        """The customer pays: every notification the simulator built, delivered; the replies."""
        return [self.deliver(channel, headers, body)
                for headers, body in self.paysim.notifications(channel, order_id, **options)]

    def verdicts(self, out_trade_no):
        return [(n.verdict, n.reason) for n in self.h.rows("payment_notifications", out_trade_no=out_trade_no)]


@pytest.fixture
def channels(make_harness, migrated_sqlite_file, tmp_path, paysim, merchant_keys, callers):
    path = tmp_path / "orders.sqlite3"
    shutil.copyfile(migrated_sqlite_file, path)
    harness = make_harness(f"sqlite:///{path}", migrated=True,
                           payment_settings=PaymentSettings(paysim.url, "http://127.0.0.1:9"))
    return Channels(harness, paysim, merchant_keys, callers.live)


def test_channel_settings_are_stored_encrypted_and_read_back_masked(channels, merchant_keys):
    [row] = channels.h.rows("payment_channels", channel="wechat")
    listed = channels.h.call(channels.caller, channels.h.stub.ListPaymentChannels, pb.ListPaymentChannelsRequest())

    assert merchant_keys.api_v3_key not in row.config_encrypted and "PRIVATE" not in row.config_encrypted
    wechat = next(c for c in listed.channels if c.channel == "wechat")
    shown = dict(wechat.settings)
    assert shown["mchid"] == "1900000109" and shown["api_v3_key"] == "****CDEF"
    assert shown["merchant_private_key"].startswith("RSA-2048 sha256:")
    assert all("BEGIN" not in value and merchant_keys.api_v3_key not in value for value in shown.values())
    assert wechat.notify_url.endswith(f"/v1/payments/wechat/notify?account={channels.accounts['wechat']}")
    assert [c.channel for c in listed.channels] == ["alipay", "wechat"]


@pytest.mark.parametrize("field, value, reason", [
    ("api_v3_key", "too-short", "api_v3_key"),
    ("merchant_private_key_pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", "merchant_private_key_pem"),
    ("mchid", "mch-abc", "mchid"),
])
def test_an_unusable_wechat_configuration_is_refused_naming_the_field(channels, field, value, reason):
    config = pb.WechatPayConfig()
    config.CopyFrom(channels.wechat_config)
    setattr(config, field, value)

    with pytest.raises(RemoteError) as refused:
        channels.configure("wechat", config)

    assert (refused.value.code, refused.value.details["field"]) == ("invalid_payment_channel_config", reason)


def test_paying_with_wechat_returns_the_code_url_and_asking_again_returns_the_same(channels):
    order = channels.order()

    first = channels.start(order.id, "wechat")
    again = channels.start(order.id, "wechat")

    assert first.status == "pending_payment"
    prompt = first.payment_prompt
    assert prompt.code_url.startswith("weixin://wxpay/bizpayurl?pr=") and prompt.amount == order.payable_amount
    assert again.payment_prompt.code_url == prompt.code_url
    assert len(channels.paysim.sim.trades) == 1


def test_paying_with_alipay_returns_the_qr_code(channels):
    order = channels.order()

    prompt = channels.start(order.id, "alipay").payment_prompt

    assert prompt.qr_code.startswith("https://qr.alipay.com/") and prompt.out_trade_no == order.id


@pytest.mark.parametrize("channel, accepted", [("wechat", (204, b"")), ("alipay", (200, b"success"))])
def test_a_valid_notification_pays_the_order_once_with_one_order_paid(channels, channel, accepted):
    order = channels.order()
    channels.start(order.id, channel)

    [reply] = channels.pay_via_provider(order.id, channel)

    assert (reply.http_status, reply.body, reply.verdict) == (*accepted, "paid")
    paid = channels.h.get(order.id, channels.caller)
    assert (paid.status, paid.channel, paid.paid_amount) == ("paid", channel, order.payable_amount)
    [payment] = channels.h.rows("payments", order_id=order.id)
    assert payment.provider_transaction_id and payment.amount == order.payable_amount
    [event] = channels.h.outbox(PAID, events.OrderPaid)
    assert (event.order_id, event.channel, event.payment_id) == (order.id, channel, payment.id)
    assert channels.verdicts(order.id) == [("paid", "verified")]


@pytest.mark.parametrize("channel", ["wechat", "alipay"])
def test_duplicate_notifications_are_acknowledged_and_change_nothing(channels, channel):
    order = channels.order()
    channels.start(order.id, channel)
    [(headers, body)] = channels.paysim.notifications(channel, order.id)

    replies = [channels.deliver(channel, headers, body) for _ in range(3)]
    replies += channels.pay_via_provider(order.id, channel, repeat=2)

    assert [r.verdict for r in replies] == ["paid", "duplicate", "duplicate", "duplicate", "duplicate"]
    assert all(r.http_status in (200, 204) and r.body in (b"", b"success") for r in replies)
    assert channels.h.count("payments", order_id=order.id) == 1
    assert len(channels.h.outbox(PAID, events.OrderPaid)) == 1


REFUSALS = [
    ("forged_signature", {"tamper": "foreign_key"}, "bad_signature"),
    ("tampered_signature", {"tamper": "signature"}, "bad_signature"),
    ("tampered_body", {"tamper": "body"}, "bad_signature"),
    ("wrong_amount", {"amount": 1}, "amount_mismatch"),
    ("stale_timestamp", {"timestamp_offset_s": -600}, "stale_timestamp"),
    ("future_timestamp", {"timestamp_offset_s": 600}, "stale_timestamp"),
    ("wrong_merchant", {"account": "1900000999"}, "merchant_mismatch"),
]


@pytest.mark.parametrize("channel", ["wechat", "alipay"])
@pytest.mark.parametrize("case, options, reason", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_a_notification_that_fails_verification_is_refused_and_the_order_stays_pending(
        channels, channel, case, options, reason):
    order = channels.order()
    channels.start(order.id, channel)
    if channel == "alipay" and options.get("account"):
        options = {"account": "2021000000000999"}

    [reply] = channels.pay_via_provider(order.id, channel, **options)

    if channel == "wechat":
        assert reply.http_status == 400 and b'"code": "FAIL"' in reply.body
    else:
        assert (reply.http_status, reply.body) == (200, b"failure")
    assert reply.verdict == "rejected"
    assert channels.h.get(order.id, channels.caller).status == "pending_payment"
    assert channels.h.count("payments") == 0 and channels.h.outbox(PAID, events.OrderPaid) == []
    recorded = [r for v, r in channels.verdicts(order.id) if v == "rejected"] or \
        [n.reason for n in channels.h.rows("payment_notifications", verdict="rejected")]
    assert recorded == [reason]


def test_a_notification_for_an_unknown_account_is_refused_and_recorded(channels):
    order = channels.order()
    channels.start(order.id, "wechat")
    [(headers, body)] = channels.paysim.notifications("wechat", order.id)

    reply = channels.deliver("wechat", headers, body, account="pch_unknown")

    assert (reply.http_status, reply.verdict) == (400, "rejected")
    assert [(n.merchant_id, n.reason) for n in channels.h.rows("payment_notifications")] == [("", "unknown_account")]
    assert channels.h.get(order.id, channels.caller).status == "pending_payment"


def test_another_merchants_account_cannot_pay_this_merchants_order(channels, callers, merchant_keys):
    order = channels.order()
    channels.start(order.id, "alipay")
    other = channels.h.call(callers.other_merchant, channels.h.stub.ConfigurePaymentChannel,
                            pb.ConfigurePaymentChannelRequest(channel="alipay", alipay=channels.alipay_config))
    other_account = parse_qs(urlsplit(other.notify_url).query)["account"][0]
    [(headers, body)] = channels.paysim.notifications("alipay", order.id)

    reply = channels.deliver("alipay", headers, body, account=other_account)

    assert (reply.verdict, reply.body) == ("rejected", b"failure")
    assert channels.h.get(order.id, channels.caller).status == "pending_payment"


@pytest.mark.parametrize("channel, late_state", [("wechat", "NOTPAY"), ("alipay", "WAIT_BUYER_PAY")])
def test_an_out_of_order_notification_after_the_payment_is_acknowledged_and_ignored(channels, channel, late_state):
    order = channels.order()
    channels.start(order.id, channel)
    [(late_headers, late_body)] = channels.paysim.notifications(channel, order.id, trade_state=late_state)
    channels.pay_via_provider(order.id, channel)

    reply = channels.deliver(channel, late_headers, late_body)

    assert reply.verdict == "ignored" and reply.http_status in (200, 204)
    assert channels.h.get(order.id, channels.caller).status == "paid"
    assert channels.h.count("payments", order_id=order.id) == 1


def test_a_payment_notified_for_a_cancelled_order_is_recorded_not_applied(channels):
    order = channels.order()
    channels.start(order.id, "wechat")
    channels.h.cancel(order.id, channels.caller)

    [reply] = channels.pay_via_provider(order.id, "wechat")

    assert (reply.verdict, reply.http_status) == ("not_payable", 204)
    assert channels.h.get(order.id, channels.caller).status == "cancelled"
    assert channels.verdicts(order.id) == [("not_payable", "order_cancelled")]


def test_test_mode_without_a_simulator_cannot_pay_through_a_provider(make_harness, migrated_sqlite_file, tmp_path,
                                                                   paysim, merchant_keys, callers):
    path = tmp_path / "orders.sqlite3"
    shutil.copyfile(migrated_sqlite_file, path)
    harness = make_harness(f"sqlite:///{path}", migrated=True)
    wechat, _ = paysim.register(merchant_keys)
    harness.call(callers.test, harness.stub.ConfigurePaymentChannel,
                 pb.ConfigurePaymentChannelRequest(channel="wechat", wechat=wechat))
    order = harness.create(callers.test)

    with pytest.raises(RemoteError) as refused:
        harness.pay(order.id, callers.test, channel="wechat")

    assert refused.value.code == "payment_simulator_not_configured"


def _notify_relay(stub) -> Flask:
    """What the gateway's notify endpoint does: forward the raw request to orders, answer what orders says."""
    app = Flask("relay")

    @app.post("/v1/payments/<channel>/notify")
    def notify(channel: str) -> Response:
        reply = grpc_client.call(stub.HandlePaymentNotification, pb.PaymentNotification(
            channel=channel, headers={k.lower(): v for k, v in request.headers.items()}, body=request.get_data(),
            account=request.args.get("account", "")))
        return Response(reply.body, status=reply.http_status, content_type=reply.content_type or None)

    return app


@pytest.mark.parametrize("channel", ["wechat", "alipay"])
def test_the_channel_test_runs_a_1_fen_payment_through_the_notification_path(
        make_harness, migrated_sqlite_file, tmp_path, paysim, merchant_keys, callers, serve_wsgi, channel):
    path = tmp_path / "orders.sqlite3"
    shutil.copyfile(migrated_sqlite_file, path)
    settings = PaymentSettings(paysim.url, "http://unused")
    harness = make_harness(f"sqlite:///{path}", migrated=True, payment_settings=settings)
    relay, relay_url = serve_wsgi(_notify_relay(harness.stub))
    object.__setattr__(settings, "notify_base_url", relay_url)
    wechat, alipay = paysim.register(merchant_keys)
    harness.call(callers.test, harness.stub.ConfigurePaymentChannel,
                 pb.ConfigurePaymentChannelRequest(channel=channel, wechat=wechat, alipay=alipay))
    try:
        result = harness.call(callers.test, harness.stub.TestPaymentChannel,
                              pb.TestPaymentChannelRequest(channel=channel))
    finally:
        relay.shutdown()

    assert [(s.name, s.ok) for s in result.steps] == [("configured", True), ("signed", True), ("notified", True),
                                                     ("verified", True)], [s.detail for s in result.steps]
    assert result.ok and result.out_trade_no.startswith("pct_")
    [seen] = harness.rows("payment_notifications", out_trade_no=result.out_trade_no)
    assert (seen.verdict, seen.amount) == ("test_verified", 1)
    assert harness.count("payments") == 0


def test_the_channel_test_reports_an_unconfigured_channel(harness, callers):
    result = harness.call(callers.test, harness.stub.TestPaymentChannel, pb.TestPaymentChannelRequest(channel="alipay"))

    assert not result.ok and [(s.name, s.ok) for s in result.steps] == [("configured", False)]


@pytest.mark.parametrize("timestamp", ["99999999999999999999", "-5", "1e9", ""])
def test_a_wechat_notification_with_a_nonsense_timestamp_is_refused_not_crashed(channels, timestamp):
    order = channels.order()
    channels.start(order.id, "wechat")
    [(headers, body)] = channels.paysim.notifications("wechat", order.id)

    reply = channels.deliver("wechat", {**headers, "Wechatpay-Timestamp": timestamp}, body)

    assert (reply.http_status, reply.verdict) == (400, "rejected")
    assert channels.h.get(order.id, channels.caller).status == "pending_payment"


@pytest.mark.parametrize("channel", ["wechat", "alipay"])
def test_a_refund_of_a_provider_paid_order_goes_back_through_the_channel_once(channels, channel):
    order = channels.order()
    channels.start(order.id, channel)
    channels.pay_via_provider(order.id, channel)

    result = channels.h.call(channels.caller, channels.h.stub.RefundOrder,
                             pb.RefundOrderRequest(order_id=order.id, items=[pb.OrderItem(product_id="prd_coupon",
                                                                                          quantity=1)]))

    trade = channels.paysim.sim.find_trade(channel, order.id)
    assert trade.refunds == {result.id: result.amount} and result.amount == 4500
    assert result.order_status == "paid"
