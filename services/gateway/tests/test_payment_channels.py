"""Payment channel routes: settings forwarded and shown masked, the channel test, and provider notifications
forwarded exactly as received (no API key) with the orders service's answer given back verbatim."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from weika.orders.v1 import orders_pb2
from weika_gateway.app import create_app
from weika_kit.errors import RemoteError

WECHAT_BODY = {"mchid": "1900000109", "appid": "wx8888888888888888", "merchant_serial_no": "5157F09E",
               "merchant_private_key_pem": "-----BEGIN PRIVATE KEY-----\nMII...\n-----END PRIVATE KEY-----",
               "api_v3_key": "0123456789abcdef0123456789ABCDEF",
               "platform_public_key_pem": "-----BEGIN PUBLIC KEY-----\nMII...\n-----END PUBLIC KEY-----",
               "platform_serial_no": "PUB_KEY_ID_0112"}


@dataclass
class PaymentsFake:
    """The orders service's payment RPCs, recorded; `reply` is what HandlePaymentNotification answers."""

    base: Any
    requests: list[Any] = field(default_factory=list)
    reply: orders_pb2.PaymentNotificationReply | Exception = field(
        default_factory=lambda: orders_pb2.PaymentNotificationReply(http_status=204, verdict="paid"))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.base, name)

    def configure_payment_channel(self, caller, request):
        self.requests.append((caller, request))
        return orders_pb2.PaymentChannel(channel=request.channel, notify_url="https://pay.example/v1/payments/"
                                         f"{request.channel}/notify?account=pch_1", settings={"api_v3_key": "****CDEF"})

    def list_payment_channels(self, caller):
        return orders_pb2.ListPaymentChannelsResponse(channels=[orders_pb2.PaymentChannel(channel="wechat")])

    def test_payment_channel(self, caller, channel):
        self.requests.append((caller, channel))
        return orders_pb2.PaymentChannelTest(channel=channel, ok=True, out_trade_no="pct_1", steps=[
            orders_pb2.PaymentChannelTestStep(name=n, ok=True, detail="") for n in
            ("configured", "signed", "notified", "verified")])

    def handle_payment_notification(self, request):
        self.requests.append((None, request))
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply

    def pay_order(self, caller, request):
        order = orders_pb2.Order(id=request.order_id, status="pending_payment", payable_amount=16000)
        order.payment_prompt.CopyFrom(orders_pb2.PaymentPrompt(channel=request.channel, out_trade_no=request.order_id,
                                                               amount=16000, code_url="weixin://wxpay/bizpayurl?pr=x"))
        return order


@pytest.fixture
def payments_fake(fake) -> PaymentsFake:
    return PaymentsFake(fake)


@pytest.fixture
def app(db, payments_fake, settings):
    return create_app(db, clients=payments_fake, settings=settings)


def test_configuring_wechat_forwards_every_field_and_answers_the_masked_settings(client, merchant, payments_fake):
    response = client.put("/v1/settings/payment-channels/wechat", json=WECHAT_BODY, headers=merchant.live)

    assert response.status_code == 200
    body = response.get_json()
    assert body["settings"] == {"api_v3_key": "****CDEF"} and body["notify_url"].endswith("account=pch_1")
    caller, request = payments_fake.requests[0]
    assert (caller.mode, request.channel, request.wechat.mchid, request.wechat.api_v3_key) == \
        ("live", "wechat", "1900000109", WECHAT_BODY["api_v3_key"])


def test_a_missing_setting_is_422_naming_the_field(client, merchant, assert_error):
    body = {k: v for k, v in WECHAT_BODY.items() if k != "api_v3_key"}

    error = assert_error(client.put("/v1/settings/payment-channels/wechat", json=body, headers=merchant.live), 422,
                         "invalid_request")

    assert error["details"]["field"] == "api_v3_key"


def test_an_unknown_channel_is_404(client, merchant, assert_error):
    assert_error(client.put("/v1/settings/payment-channels/paypal", json={}, headers=merchant.live), 404,
                 "payment_channel_not_found")


def test_settings_need_an_api_key(client, assert_error):
    assert_error(client.put("/v1/settings/payment-channels/wechat", json=WECHAT_BODY), 401, "unauthenticated")


def test_reading_an_unconfigured_channel_is_404(client, merchant, assert_error):
    assert client.get("/v1/settings/payment-channels/wechat", headers=merchant.live).status_code == 200
    assert_error(client.get("/v1/settings/payment-channels/alipay", headers=merchant.live), 404,
                 "payment_channel_not_configured")


def test_the_channel_test_reports_each_step(client, merchant):
    body = client.post("/v1/settings/payment-channels/alipay/test", headers=merchant.test).get_json()

    assert body["ok"] is True
    assert [s["name"] for s in body["steps"]] == ["configured", "signed", "notified", "verified"]


def test_a_notification_is_forwarded_raw_without_an_api_key_and_answered_verbatim(client, payments_fake):
    raw = b'{"id":"EV-1","resource":{"ciphertext":"..."}}'
    payments_fake.reply = orders_pb2.PaymentNotificationReply(http_status=400, content_type="application/json",
                                                              body=b'{"code": "FAIL", "message": "bad_signature"}')

    response = client.post("/v1/payments/wechat/notify?account=pch_1", data=raw, content_type="application/json",
                           headers={"Wechatpay-Signature": "c2ln", "Wechatpay-Serial": "PUB_KEY_ID_0112"})

    assert (response.status_code, response.get_json()) == (400, {"code": "FAIL", "message": "bad_signature"})
    _, forwarded = payments_fake.requests[-1]
    assert (forwarded.channel, forwarded.body, forwarded.account) == ("wechat", raw, "pch_1")
    assert forwarded.headers["wechatpay-signature"] == "c2ln" and forwarded.headers["wechatpay-serial"]


@pytest.mark.parametrize("channel, expected", [("wechat", (500, b'"FAIL"')), ("alipay", (200, b"failure"))])
def test_when_orders_cannot_answer_the_provider_is_told_to_retry(client, payments_fake, channel, expected):
    payments_fake.reply = RemoteError(grpc.StatusCode.UNAVAILABLE, "service_unavailable", "orders is down", {})

    response = client.post(f"/v1/payments/{channel}/notify?account=pch_1", data=b"a=b")

    assert response.status_code == expected[0] and expected[1] in response.data


def test_paying_with_a_provider_channel_returns_what_the_buyers_app_needs(client, merchant):
    response = client.post("/v1/orders/ord_1/pay", json={"channel": "wechat"}, headers=merchant.live)

    body = response.get_json()
    assert body["status"] == "pending_payment"
    assert body["payment"] == {"channel": "wechat", "out_trade_no": "ord_1", "amount": 16000,
                               "code_url": "weixin://wxpay/bizpayurl?pr=x", "prepay_id": None, "qr_code": None}


# --- order lifecycle routes (same fake: the orders RPCs recorded, answers shaped like the service's)


def _lifecycle_fake(payments_fake: PaymentsFake) -> PaymentsFake:
    def ship_order(caller, request):
        payments_fake.requests.append((caller, request))
        order = orders_pb2.Order(id=request.order_id, status="shipped")
        order.shipment.CopyFrom(orders_pb2.Shipment(carrier=request.carrier, tracking_number=request.tracking_number))
        return order

    def list_orders(caller, request):
        payments_fake.requests.append((caller, request))
        return orders_pb2.ListOrdersResponse(orders=[orders_pb2.Order(id="ord_2")], next_cursor="c2")

    def count_orders(caller, request):
        return orders_pb2.OrderCounts(by_status={"paid": 2, "pending_payment": 1}, total=3)

    def get_order_settings(caller):
        return orders_pb2.OrderSettings(auto_cancel_minutes=30, auto_confirm_days=7, refund_window_days=7)

    def put_order_settings(caller, request):
        payments_fake.requests.append((caller, request))
        return request

    for fn in (ship_order, list_orders, count_orders, get_order_settings, put_order_settings):
        object.__setattr__(payments_fake, fn.__name__, fn)
    return payments_fake


def test_shipping_forwards_the_logistics_and_shows_them_on_the_order(client, merchant, payments_fake):
    _lifecycle_fake(payments_fake)

    body = client.post("/v1/orders/ord_1/ship", json={"carrier": "SF Express", "tracking_number": "SF123"},
                       headers=merchant.live).get_json()

    assert body["status"] == "shipped"
    assert body["shipment"] == {"carrier": "SF Express", "tracking_number": "SF123", "shipped_at": None}


def test_the_order_list_forwards_every_filter_and_the_cursor(client, merchant, payments_fake):
    _lifecycle_fake(payments_fake)

    body = client.get("/v1/orders?status=paid&store_id=sto_1&customer_id=cus_1&product_id=prd_1"
                      "&from=2026-06-01&to=2026-06-30&limit=5&cursor=c1", headers=merchant.live).get_json()

    assert [o["id"] for o in body["data"]] == ["ord_2"] and body["next_cursor"] == "c2"
    _, sent = payments_fake.requests[-1]
    assert (sent.status, sent.store_id, sent.customer_id, sent.product_id, sent.page_size, sent.cursor) == \
        ("paid", "sto_1", "cus_1", "prd_1", 5, "c1")
    assert sent.created_to.ToDatetime() > sent.created_from.ToDatetime()


def test_an_unknown_status_filter_is_422(client, merchant, assert_error, payments_fake):
    _lifecycle_fake(payments_fake)

    error = assert_error(client.get("/v1/orders?status=lost", headers=merchant.live), 422, "invalid_request")

    assert error["details"]["field"] == "status"


def test_counts_list_every_status_tab(client, merchant, payments_fake):
    _lifecycle_fake(payments_fake)

    body = client.get("/v1/orders/counts", headers=merchant.live).get_json()

    assert body["total"] == 3 and body["by_status"]["paid"] == 2 and body["by_status"]["refunded"] == 0


def test_order_settings_keep_what_is_not_sent(client, merchant, payments_fake):
    _lifecycle_fake(payments_fake)

    body = client.put("/v1/settings/orders", json={"auto_cancel_minutes": 15}, headers=merchant.live).get_json()

    assert (body["auto_cancel_minutes"], body["auto_confirm_days"], body["refund_window_days"]) == (15, 7, 7)


def test_customers_are_listed_and_shown_with_their_orders_and_masked_phones(client, merchant, payments_fake):
    summary = orders_pb2.CustomerSummary(
        customer=orders_pb2.Customer(customer_id="cus_1", external_id="VIP-1", phone_masked="138****1234"),
        order_count=2, paid_amount=16000)

    def list_customers(caller, request):
        payments_fake.requests.append((caller, request))
        return orders_pb2.ListCustomersResponse(customers=[summary])

    def get_customer(caller, customer_id):
        return orders_pb2.CustomerDetail(summary=summary, orders=[orders_pb2.Order(id="ord_1")])

    object.__setattr__(payments_fake, "list_customers", list_customers)
    object.__setattr__(payments_fake, "get_customer", get_customer)

    listed = client.get("/v1/customers?region=CN-SH&limit=10", headers=merchant.live).get_json()
    shown = client.get("/v1/customers/cus_1", headers=merchant.live).get_json()

    assert listed["data"][0]["phone"] == "138****1234" and listed["data"][0]["paid_amount"] == 16000
    assert (payments_fake.requests[-1][1].region, payments_fake.requests[-1][1].page_size) == ("CN-SH", 10)
    assert shown["id"] == "cus_1" and [o["id"] for o in shown["orders"]] == ["ord_1"]


def test_cancelling_forwards_the_reason_and_an_empty_body_means_the_default(client, merchant, payments_fake):
    def cancel_order(caller, request):
        payments_fake.requests.append((caller, request))
        return orders_pb2.Order(id=request.order_id, status="cancelled")

    object.__setattr__(payments_fake, "cancel_order", cancel_order)

    with_reason = client.post("/v1/orders/ord_1/cancel", json={"reason": "customer_cancelled"}, headers=merchant.live)
    without = client.post("/v1/orders/ord_2/cancel", headers=merchant.live)

    assert with_reason.get_json()["status"] == without.get_json()["status"] == "cancelled"
    assert [r.reason for _, r in payments_fake.requests[-2:]] == ["customer_cancelled", ""]


def test_a_refund_forwards_the_quantities_and_answers_the_refund(client, merchant, payments_fake):
    def refund_order(caller, request):
        payments_fake.requests.append((caller, request))
        return orders_pb2.Refund(id="rfd_1", order_id=request.order_id, status="succeeded", amount=4500,
                                 items=list(request.items), voided_coupon_ids=["cpn_1"], order_status="paid",
                                 provider_status="processing")

    object.__setattr__(payments_fake, "refund_order", refund_order)

    body = client.post("/v1/orders/ord_1/refund", json={"items": [{"product_id": "prd_1", "quantity": 1}]},
                       headers=merchant.live).get_json()
    whole = client.post("/v1/orders/ord_2/refund", headers=merchant.live)

    assert (body["amount"], body["voided_coupon_ids"], body["order_status"]) == (4500, ["cpn_1"], "paid")
    assert body["provider_status"] == "processing"
    assert whole.status_code == 200 and list(payments_fake.requests[-1][1].items) == []


def test_a_refund_refused_for_a_redeemed_coupon_is_409_naming_it(client, merchant, payments_fake, assert_error):
    def refund_order(caller, request):
        raise RemoteError(grpc.StatusCode.FAILED_PRECONDITION, "refund_refused", "refund refused: coupon redeemed",
                          {"coupon_id": "cpn_9", "refused_because": "coupon_already_redeemed"})

    object.__setattr__(payments_fake, "refund_order", refund_order)

    error = assert_error(client.post("/v1/orders/ord_1/refund", headers=merchant.live), 409, "refund_refused")

    assert error["details"]["coupon_id"] == "cpn_9"


def test_customer_tags_are_put_as_a_list_and_filter_the_customer_list(client, merchant, payments_fake):
    def set_customer_tags(caller, customer_id, tags):
        payments_fake.requests.append((caller, (customer_id, tags)))
        return orders_pb2.CustomerSummary(customer=orders_pb2.Customer(customer_id=customer_id, tags=tags))

    def list_customers(caller, request):
        payments_fake.requests.append((caller, request))
        return orders_pb2.ListCustomersResponse()

    object.__setattr__(payments_fake, "set_customer_tags", set_customer_tags)
    object.__setattr__(payments_fake, "list_customers", list_customers)

    put = client.put("/v1/customers/cus_1/tags", json={"tags": ["vip", "生日月"]}, headers=merchant.live)
    not_a_list = client.put("/v1/customers/cus_1/tags", json={"tags": "vip"}, headers=merchant.live)
    client.get("/v1/customers?tag=vip", headers=merchant.live)

    assert put.status_code == 200 and put.get_json()["tags"] == ["vip", "生日月"]
    assert not_a_list.status_code == 422 and not_a_list.get_json()["error"]["details"]["field"] == "tags"
    assert payments_fake.requests[-2][1] == ("cus_1", ["vip", "生日月"])
    assert payments_fake.requests[-1][1].tag == "vip"
