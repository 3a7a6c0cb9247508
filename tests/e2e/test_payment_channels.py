"""Live-mode orders paid (and refunded) through the WeChat Pay and Alipay simulators, end to end through real
processes: the platform (tools/run.py, what `make run` runs) and the payment simulator (weika-paysim) beside it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.e2e.platform import Api, Platform, free_port
from weika_paysim import protocol

API_V3_KEY = "0123456789abcdef0123456789ABCDEF"


@pytest.fixture(scope="module")
def paysim(tmp_path_factory) -> Iterator[str]:  # type: ignore[no-untyped-def]
    port = free_port()
    key_dir = tmp_path_factory.mktemp("paysim")
    env = {**os.environ, "WEIKA_PAYSIM_PORT": str(port), "WEIKA_PAYSIM_KEY_DIR": str(key_dir),
           "WEIKA_LOG_LEVEL": "WARNING"}
    process = subprocess.Popen([sys.executable, "-m", "weika_paysim"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def paying_platform(paysim, tmp_path_factory) -> Iterator[Platform]:  # type: ignore[no-untyped-def]
    platform = Platform(tmp_path_factory.mktemp("platform-payments"))
    platform.extra_env.update({"WEIKA_PAYSIM_URL": paysim, "WEIKA_PAYMENT_NOTIFY_BASE_URL": platform.url})
    platform.start()
    try:
        yield platform
    finally:
        platform.stop()


def _configure_channels(api: Api, paysim: str) -> None:
    """What a merchant does once: register with each provider, then give Weika its keys."""
    wechat_key, alipay_key = protocol.new_rsa_key(), protocol.new_rsa_key()
    wechat = requests.post(paysim + "/sim/wechat/merchants", timeout=10, json={
        "mchid": "1900000109", "appid": "wx8888888888888888", "merchant_serial_no": "5157F09EFDC096DE",
        "merchant_public_key_pem": protocol.public_pem(wechat_key), "api_v3_key": API_V3_KEY}).json()
    alipay = requests.post(paysim + "/sim/alipay/apps", timeout=10, json={
        "app_id": "2021000000000001", "app_public_key_pem": protocol.public_pem(alipay_key)}).json()
    answer = api.request("PUT", "/v1/settings/payment-channels/wechat", json={
        "mchid": "1900000109", "appid": "wx8888888888888888", "merchant_serial_no": "5157F09EFDC096DE",
        "merchant_private_key_pem": protocol.private_pem(wechat_key), "api_v3_key": API_V3_KEY,
        "platform_public_key_pem": wechat["platform_public_key_pem"],
        "platform_serial_no": wechat["platform_serial_no"]})
    assert answer.status_code == 200, answer.text
    assert "BEGIN" not in answer.text and API_V3_KEY not in answer.text
    answer = api.request("PUT", "/v1/settings/payment-channels/alipay", json={
        "app_id": "2021000000000001", "app_private_key_pem": protocol.private_pem(alipay_key),
        "alipay_public_key_pem": alipay["alipay_public_key_pem"]})
    assert answer.status_code == 200, answer.text


def _live_order(api: Api) -> dict[str, Any]:
    category = api.post("/v1/categories", json={"name": f"零售 {uuid.uuid4().hex[:6]}"}).json()
    product = api.post("/v1/products", json={"kind": "physical", "name": "Jasmine tea", "category_id": category["id"],
                                             "price": 4200, "stock": {"mode": "limited", "quantity": 5}})
    assert product.status_code == 201, product.text
    order = api.post("/v1/orders", headers={"Idempotency-Key": uuid.uuid4().hex}, json={
        "customer": {"external_id": "wx-openid-7"}, "items": [{"product_id": product.json()["id"], "quantity": 1}]})
    assert order.status_code == 201, order.text
    return dict(order.json())


def test_live_orders_are_paid_through_both_simulators_once_on_the_embedded_platform(paying_platform, paysim):
    merchant = requests.post(paying_platform.url + "/v1/merchants", json={"name": "Tea House"}, timeout=30,
                             headers={"Authorization": f"Bearer {paying_platform.admin_token}"}).json()
    api = Api(paying_platform.url, merchant["api_keys"]["live"])
    _configure_channels(api, paysim)

    for channel, prompt_field in (("wechat", "code_url"), ("alipay", "qr_code")):
        check = api.post(f"/v1/settings/payment-channels/{channel}/test").json()
        assert check["ok"], check
        assert [s["name"] for s in check["steps"]] == ["configured", "signed", "notified", "verified"]

        order = _live_order(api)
        started = api.post(f"/v1/orders/{order['id']}/pay", json={"channel": channel})
        assert started.status_code == 200, started.text
        assert started.json()["status"] == "pending_payment" and started.json()["payment"][prompt_field]

        forged = requests.post(f"{paysim}/sim/{channel}/pay", timeout=30,
                               json={"out_trade_no": order["id"], "tamper": "foreign_key"}).json()
        assert forged["deliveries"][0]["delivered"] is False
        assert api.get(f"/v1/orders/{order['id']}").json()["status"] == "pending_payment"

        paid = requests.post(f"{paysim}/sim/{channel}/pay", timeout=30,
                             json={"out_trade_no": order["id"], "repeat": 3}).json()
        assert [d["delivered"] for d in paid["deliveries"]] == [True, True, True]
        body = api.get(f"/v1/orders/{order['id']}").json()
        assert (body["status"], body["channel"], body["paid_amount"]) == ("awaiting_shipment", channel, 4200)  # physical goods
        history = api.get(f"/v1/orders/{order['id']}/history").json()["data"]
        assert [(t["to_status"], t["actor"]) for t in history if t["to_status"] == "paid"] == \
            [("paid", f"provider:{channel}")]

        refunded = api.post(f"/v1/orders/{order['id']}/refund", json={"reason": "customer_request"})
        assert refunded.status_code == 200, refunded.text
        assert (refunded.json()["amount"], refunded.json()["order_status"]) == (4200, "refunded")
