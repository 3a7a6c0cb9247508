"""The money path through all six services, as a merchant, a buyer and a clerk would walk it.

Runs on the embedded platform and on Kafka + PostgreSQL + Redis (the `platform` fixture).
"""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.e2e.platform import Api, eventually


def new_merchant(platform, name: str = "Tea House") -> dict:  # type: ignore[no-untyped-def]
    resp = requests.post(platform.url + "/v1/merchants", json={"name": name, "contact": "ops@example.com"},
                         headers={"Authorization": f"Bearer {platform.admin_token}"}, timeout=30)
    assert resp.status_code == 201, resp.text
    return resp.json()


def coupon_product(api: Api, category_id: str, store_ids: list[str], quantity: int = 10) -> dict:
    resp = api.post("/v1/products", json={
        "kind": "coupon", "name": "618 满50减10 voucher", "category_id": category_id, "price": 990,
        "stock": {"mode": "limited", "quantity": quantity},
        "coupon": {"face_value": 1000, "threshold": 5000, "store_ids": store_ids, "redeem_methods": ["qr", "code"],
                   "validity": {"mode": "relative", "days": 30}},
    })
    assert resp.status_code == 201, resp.text
    return resp.json()


def open_shop(platform) -> dict:  # type: ignore[no-untyped-def]
    """A new merchant in test mode with two stores, a category and a coupon valid at the first store only."""
    merchant = new_merchant(platform)
    api = Api(platform.url, merchant["api_keys"]["test"])
    stores = []
    for code in ("SH-001", "SH-002"):
        resp = api.post("/v1/stores", json={"name": f"Store {code}", "code": code, "region": "Shanghai"})
        assert resp.status_code == 201, resp.text
        stores.append(resp.json())
    category = api.post("/v1/categories", json={"name": "餐饮券"}).json()
    product = coupon_product(api, category["id"], [stores[0]["id"]])
    return {"merchant": merchant, "api": api, "stores": stores, "category": category, "product": product}


@pytest.fixture(scope="session")
def shop(platform):  # type: ignore[no-untyped-def]
    return open_shop(platform)


def buy(api: Api, product_id: str, quantity: int, key: str | None = None) -> requests.Response:
    body = {"customer": {"external_id": "wx-openid-42", "phone": "13800138000", "birth_year": 1994,
                         "region": "Shanghai"},
            "items": [{"product_id": product_id, "quantity": quantity}]}
    return api.post("/v1/orders", json=body, headers={"Idempotency-Key": key or uuid.uuid4().hex})


def test_coupon_is_bought_paid_issued_redeemed_and_counted(platform):
    shop = open_shop(platform)  # a merchant of its own, so the report counts only this story
    api, store_a, store_b = shop["api"], shop["stores"][0], shop["stores"][1]

    created = buy(api, shop["product"]["id"], 2, key="order-1")
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["status"] == "pending_payment"
    assert order["total_amount"] == 1980 and isinstance(order["total_amount"], int)

    paid = api.post(f"/v1/orders/{order['id']}/pay", json={"channel": "simulated"})
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "paid"
    # Both coupons issued (redemption's coupon-issued events) move the paid order on to delivered.
    eventually(lambda: api.get(f"/v1/orders/{order['id']}").json()["status"] == "delivered")

    def issued_coupons():  # type: ignore[no-untyped-def]
        data = api.get("/v1/coupons", params={"order_id": order["id"]}).json()["data"]
        return data if len(data) == 2 else None

    coupons = eventually(issued_coupons)
    assert {c["status"] for c in coupons} == {"issued"}
    assert len({c["code"] for c in coupons}) == 2
    assert all(c["store_ids"] == [store_a["id"]] for c in coupons)

    code = coupons[0]["code"]
    wrong_store = api.post("/v1/redemptions", json={"code": code, "store_id": store_b["id"], "order_amount": 6000})
    assert wrong_store.status_code == 422 and wrong_store.json()["error"]["code"] == "coupon_not_valid_at_store"

    redeemed = api.post("/v1/redemptions", json={"code": code, "store_id": store_a["id"], "order_amount": 6000})
    assert redeemed.status_code == 201, redeemed.text
    assert redeemed.json()["coupon_id"] == coupons[0]["id"] and redeemed.json()["store_id"] == store_a["id"]

    again = api.post("/v1/redemptions", json={"code": code, "store_id": store_a["id"], "order_amount": 6000})
    assert again.status_code == 409 and again.json()["error"]["code"] == "coupon_already_redeemed"

    unknown = api.post("/v1/redemptions", json={"code": "ABCD-EFGH-JKMN-PQRS-T", "store_id": store_a["id"]})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "coupon_not_found"

    def counted():  # type: ignore[no-untyped-def]
        report = api.get("/v1/reports/overview").json()
        return report if report.get("coupons_redeemed") == 1 and report.get("orders_paid") == 1 else None

    overview = eventually(counted)
    core = {k: overview[k] for k in ("orders_paid", "gmv", "coupons_issued", "coupons_redeemed", "redemption_rate")}
    assert core == {"orders_paid": 1, "gmv": 1980, "coupons_issued": 2, "coupons_redeemed": 1,
                    "redemption_rate": 0.5}


def test_a_multi_use_coupon_is_redeemed_exactly_its_number_of_uses(platform, shop):
    api, store = shop["api"], shop["stores"][0]
    resp = api.post("/v1/products", json={
        "kind": "coupon", "name": "次卡 3 coffees", "category_id": shop["category"]["id"], "price": 3000,
        "stock": {"mode": "unlimited"},
        "coupon": {"face_value": 1000, "threshold": 0, "store_ids": [], "redeem_methods": ["code"], "max_uses": 3,
                   "validity": {"mode": "relative", "days": 30}}})
    assert resp.status_code == 201 and resp.json()["coupon"]["max_uses"] == 3, resp.text
    order = buy(api, resp.json()["id"], 1).json()
    assert api.post(f"/v1/orders/{order['id']}/pay", json={"channel": "simulated"}).status_code == 200
    code = eventually(lambda: (d := api.get("/v1/coupons", params={"order_id": order["id"]}).json()["data"])
                      and d[0]["code"])

    answers = [api.post("/v1/redemptions", json={"code": code, "store_id": store["id"]}) for _ in range(4)]

    assert [a.status_code for a in answers] == [201, 201, 201, 409]
    assert answers[3].json()["error"]["code"] == "coupon_already_redeemed"


def test_same_idempotency_key_returns_the_same_order_and_refuses_another_body(shop):
    api, product_id = shop["api"], shop["product"]["id"]
    first = buy(api, product_id, 1, key="replayed-key")
    replay = buy(api, product_id, 1, key="replayed-key")
    assert first.status_code == 201 and replay.status_code in (200, 201)
    assert replay.json()["id"] == first.json()["id"]
    other = buy(api, product_id, 2, key="replayed-key")
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"


def test_limited_stock_is_never_oversold(platform, shop):
    api = shop["api"]
    product = coupon_product(api, shop["category"]["id"], [], quantity=3)
    assert buy(api, product["id"], 2).status_code == 201
    too_many = buy(api, product["id"], 2)
    assert too_many.status_code == 409 and too_many.json()["error"]["code"] == "out_of_stock"
    assert buy(api, product["id"], 1).status_code == 201


def test_merchants_and_modes_are_separate_worlds(platform, shop):
    api, product = shop["api"], shop["product"]
    order = buy(api, product["id"], 1).json()
    assert api.post(f"/v1/orders/{order['id']}/pay", json={"channel": "simulated"}).status_code == 200
    code = eventually(lambda: (d := api.get("/v1/coupons", params={"order_id": order["id"]}).json()["data"])
                      and d[0]["code"])

    rival = Api(platform.url, new_merchant(platform, "Rival Tea")["api_keys"]["test"])
    rival_store = rival.post("/v1/stores", json={"name": "Rival", "code": "RV-1"}).json()
    assert rival.get(f"/v1/products/{product['id']}").status_code == 404
    assert rival.get(f"/v1/orders/{order['id']}").status_code == 404
    assert rival.get("/v1/coupons", params={"order_id": order["id"]}).json()["data"] == []
    stolen = rival.post("/v1/redemptions", json={"code": code, "store_id": rival_store["id"], "order_amount": 6000})
    assert stolen.status_code == 404 and stolen.json()["error"]["code"] == "coupon_not_found"

    live = Api(platform.url, shop["merchant"]["api_keys"]["live"])
    assert live.get(f"/v1/orders/{order['id']}").status_code == 404
    assert live.get(f"/v1/products/{product['id']}").status_code == 404
    assert live.get("/v1/stores").json()["data"] == []


def test_simulated_payment_is_refused_in_live_mode(platform):
    merchant = new_merchant(platform, "Live Only")
    live = Api(platform.url, merchant["api_keys"]["live"])
    store = live.post("/v1/stores", json={"name": "Main", "code": "M-1"}).json()
    category = live.post("/v1/categories", json={"name": "服务券"}).json()
    product = coupon_product(live, category["id"], [store["id"]])
    order = buy(live, product["id"], 1).json()
    refused = live.post(f"/v1/orders/{order['id']}/pay", json={"channel": "simulated"})
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "simulated_payment_test_mode_only"
    assert live.get(f"/v1/orders/{order['id']}").json()["status"] == "pending_payment"


def test_requests_without_a_valid_key_are_refused(platform):
    assert requests.get(platform.url + "/v1/stores", timeout=10).status_code == 401
    bad = requests.get(platform.url + "/v1/stores", headers={"Authorization": "Bearer wk_test_nope"}, timeout=10)
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "unauthenticated"
    no_operator = requests.post(platform.url + "/v1/merchants", json={"name": "x"},
                                headers={"Authorization": "Bearer wrong"}, timeout=10)
    assert no_operator.status_code in (401, 403)
