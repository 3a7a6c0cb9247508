"""The simulator plays the provider faithfully: it refuses unsigned or mis-signed merchant requests, signs its
answers, and its notifications verify and decrypt exactly as the providers document."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import parse_qsl

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from weika_paysim import protocol
from weika_paysim.app import create_app
from weika_paysim.simulator import Simulator

API_V3_KEY = "0123456789abcdef0123456789ABCDEF"


@pytest.fixture(scope="module")
def keys():
    return Simulator.generate(), protocol.new_rsa_key()


@pytest.fixture
def sim(keys):
    provider, _ = keys
    return Simulator(provider.wechat_platform_key, provider.wechat_platform_serial, provider.alipay_key)


@pytest.fixture
def client(sim, keys):
    _, merchant_key = keys
    app = create_app(sim)
    c = app.test_client()
    assert c.post("/sim/wechat/merchants", json={
        "mchid": "1900000109", "appid": "wx8888888888888888", "merchant_serial_no": "ABC123",
        "merchant_public_key_pem": protocol.public_pem(merchant_key), "api_v3_key": API_V3_KEY}).status_code == 201
    assert c.post("/sim/alipay/apps", json={"app_id": "2021000000000001",
                                            "app_public_key_pem": protocol.public_pem(merchant_key)}).status_code == 201
    return c


def native(client, key, body: bytes, *, signature: str | None = None):
    timestamp, nonce = str(int(time.time())), "n0nce"
    message = protocol.merchant_message("POST", "/v3/pay/transactions/native", timestamp, nonce, body)
    sig = signature or protocol.sign(key, message)
    auth = (f'WECHATPAY2-SHA256-RSA2048 mchid="1900000109",nonce_str="{nonce}",signature="{sig}",'
            f'timestamp="{timestamp}",serial_no="ABC123"')
    return client.post("/v3/pay/transactions/native", data=body, headers={"Authorization": auth},
                       content_type="application/json")


ORDER = json.dumps({"appid": "wx8888888888888888", "mchid": "1900000109", "description": "tea",
                    "out_trade_no": "ord_1", "notify_url": "http://127.0.0.1:9/notify",
                    "amount": {"total": 4200, "currency": "CNY"}}).encode()


def _platform_signed(sim, response) -> bool:
    h = response.headers
    message = protocol.platform_message(h["Wechatpay-Timestamp"], h["Wechatpay-Nonce"], response.data)
    return protocol.verify(sim.wechat_platform_key.public_key(), message, h["Wechatpay-Signature"])


def test_a_native_order_signed_by_the_merchant_gets_a_signed_code_url(client, sim, keys):
    response = native(client, keys[1], ORDER)

    assert response.status_code == 200 and response.get_json()["code_url"].startswith("weixin://")
    assert _platform_signed(sim, response)


def test_a_native_order_with_a_wrong_signature_is_refused_with_sign_error(client, sim, keys):
    response = native(client, keys[1], ORDER, signature=protocol.sign(keys[1], b"another message"))

    assert (response.status_code, response.get_json()["code"]) == (401, "SIGN_ERROR")
    assert _platform_signed(sim, response)
    assert sim.trades == {}


def test_a_wechat_notification_verifies_with_the_platform_key_and_decrypts_with_the_api_v3_key(client, sim, keys):
    native(client, keys[1], ORDER)

    [n] = client.post("/sim/wechat/pay", json={"out_trade_no": "ord_1", "deliver": False}).get_json()["notifications"]

    h, body = n["headers"], n["body"].encode()
    message = protocol.platform_message(h["Wechatpay-Timestamp"], h["Wechatpay-Nonce"], body)
    assert protocol.verify(sim.wechat_platform_key.public_key(), message, h["Wechatpay-Signature"])
    resource = json.loads(body)["resource"]
    plain = AESGCM(API_V3_KEY.encode()).decrypt(resource["nonce"].encode(), base64.b64decode(resource["ciphertext"]),
                                                resource["associated_data"].encode())
    transaction = json.loads(plain)
    assert (transaction["out_trade_no"], transaction["amount"]["total"], transaction["trade_state"]) == \
        ("ord_1", 4200, "SUCCESS")


def test_an_alipay_precreate_with_a_bad_signature_is_refused(client, keys):
    params = {"app_id": "2021000000000001", "method": "alipay.trade.precreate", "charset": "utf-8",
              "sign_type": "RSA2", "timestamp": "2026-06-18 16:00:00", "version": "1.0",
              "notify_url": "http://127.0.0.1:9/notify",
              "biz_content": json.dumps({"out_trade_no": "ord_2", "total_amount": "42.00", "subject": "tea"})}
    params["sign"] = protocol.sign(keys[1], b"not the content")

    answer = json.loads(client.post("/gateway.do", data=params).data)

    assert answer["alipay_trade_precreate_response"]["sub_code"] == "isv.invalid-signature"


def test_an_alipay_notification_is_signed_over_the_sorted_parameters(client, sim, keys):
    params = {"app_id": "2021000000000001", "method": "alipay.trade.precreate", "charset": "utf-8",
              "sign_type": "RSA2", "timestamp": "2026-06-18 16:00:00", "version": "1.0",
              "notify_url": "http://127.0.0.1:9/notify",
              "biz_content": json.dumps({"out_trade_no": "ord_2", "total_amount": "42.00", "subject": "tea"})}
    params["sign"] = protocol.sign(keys[1], protocol.alipay_content(params))
    assert json.loads(client.post("/gateway.do", data=params).data)["alipay_trade_precreate_response"]["qr_code"]

    [n] = client.post("/sim/alipay/pay", json={"out_trade_no": "ord_2", "deliver": False}).get_json()["notifications"]

    notified = dict(parse_qsl(n["body"]))
    assert notified["total_amount"] == "42.00" and notified["trade_status"] == "TRADE_SUCCESS"
    assert protocol.verify(sim.alipay_key.public_key(), protocol.alipay_content(notified), notified["sign"])


def signed_request(client, key, method: str, path: str, body: bytes = b""):
    timestamp, nonce = str(int(time.time())), "n0nce"
    sig = protocol.sign(key, protocol.merchant_message(method, path, timestamp, nonce, body))
    auth = (f'WECHATPAY2-SHA256-RSA2048 mchid="1900000109",nonce_str="{nonce}",signature="{sig}",'
            f'timestamp="{timestamp}",serial_no="ABC123"')
    return client.open(path, method=method, data=body or None, headers={"Authorization": auth},
                       content_type="application/json")


def _decrypted(resource) -> dict:
    return json.loads(AESGCM(API_V3_KEY.encode()).decrypt(resource["nonce"].encode(),
                                                          base64.b64decode(resource["ciphertext"]),
                                                          resource["associated_data"].encode()))


REFUND = json.dumps({"out_trade_no": "ord_1", "out_refund_no": "rfd_1", "notify_url": "http://127.0.0.1:9/notify",
                     "amount": {"refund": 1200, "total": 4200, "currency": "CNY"}}).encode()


def test_a_wechat_refund_answers_success_at_once_by_default(client, sim, keys):
    native(client, keys[1], ORDER)
    client.post("/sim/wechat/pay", json={"out_trade_no": "ord_1", "deliver": False})

    answer = signed_request(client, keys[1], "POST", "/v3/refund/domestic/refunds", REFUND)

    assert answer.status_code == 200 and answer.get_json()["status"] == "SUCCESS"


def test_a_processing_wechat_refund_is_queried_and_finished_by_a_sealed_signed_notification(client, sim, keys):
    native(client, keys[1], ORDER)
    client.post("/sim/wechat/pay", json={"out_trade_no": "ord_1", "deliver": False})
    assert client.put("/sim/wechat/merchants/1900000109/refunds", json={"answer": "PROCESSING"}).status_code == 200

    asked = signed_request(client, keys[1], "POST", "/v3/refund/domestic/refunds", REFUND)
    queried = signed_request(client, keys[1], "GET", "/v3/refund/domestic/refunds/rfd_1")
    [n] = client.post("/sim/wechat/refund-notify", json={"out_refund_no": "rfd_1", "refund_status": "ABNORMAL",
                                                         "deliver": False}).get_json()["notifications"]
    queried_after = signed_request(client, keys[1], "GET", "/v3/refund/domestic/refunds/rfd_1")

    assert (asked.get_json()["status"], queried.get_json()["status"]) == ("PROCESSING", "PROCESSING")
    assert _platform_signed(sim, queried) and queried.get_json()["amount"]["refund"] == 1200
    h, body = n["headers"], n["body"].encode()
    assert protocol.verify(sim.wechat_platform_key.public_key(),
                           protocol.platform_message(h["Wechatpay-Timestamp"], h["Wechatpay-Nonce"], body),
                           h["Wechatpay-Signature"])
    envelope = json.loads(body)
    refund = _decrypted(envelope["resource"])
    assert envelope["event_type"] == "REFUND.ABNORMAL" and envelope["resource"]["associated_data"] == "refund"
    assert (refund["out_refund_no"], refund["refund_status"], refund["amount"]["refund"]) == ("rfd_1", "ABNORMAL",
                                                                                              1200)
    assert queried_after.get_json()["status"] == "ABNORMAL"


def test_a_refund_query_signed_with_a_wrong_key_is_refused(client, sim, keys):
    native(client, keys[1], ORDER)
    client.post("/sim/wechat/pay", json={"out_trade_no": "ord_1", "deliver": False})
    signed_request(client, keys[1], "POST", "/v3/refund/domestic/refunds", REFUND)

    answer = signed_request(client, protocol.new_rsa_key(), "GET", "/v3/refund/domestic/refunds/rfd_1")

    assert (answer.status_code, answer.get_json()["code"]) == (401, "SIGN_ERROR")
