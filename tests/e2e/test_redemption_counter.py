"""At the counter through the REST API: check, redeem by signed QR, an edited QR refused, the QR images,
reversal within the window, the redemption and attempt lists (issue 6)."""

from __future__ import annotations

import uuid

from tests.e2e.platform import Api, eventually
from tests.e2e.test_money_path import open_shop


def test_check_redeem_by_qr_reverse_and_list_through_the_rest_api(platform):
    shop = open_shop(platform)
    api: Api = shop["api"]
    store = shop["stores"][0]
    order = api.post("/v1/orders", headers={"Idempotency-Key": uuid.uuid4().hex}, json={
        "customer": {"external_id": "wx-openid-7"}, "items": [{"product_id": shop["product"]["id"], "quantity": 1}],
    }).json()
    assert api.post(f"/v1/orders/{order['id']}/pay", json={"channel": "simulated"}).status_code == 200
    [coupon] = eventually(lambda: api.get("/v1/coupons", params={"order_id": order["id"]}).json()["data"] or None)
    assert coupon["qr_payload"].startswith(f"WK1.{coupon['id']}.")

    short = api.get(f"/v1/coupons/{coupon['code']}/check", params={"store_id": store["id"], "order_amount": 4000})
    assert short.status_code == 200, short.text
    assert (short.json()["redeemable"], short.json()["reason_code"], short.json()["details"]["shortfall"]) == (
        False, "coupon_threshold_not_met", 1000)
    ok = api.get(f"/v1/coupons/{coupon['code']}/check", params={"store_id": store["id"], "order_amount": 6000})
    assert ok.json()["redeemable"] is True

    png = api.get(f"/v1/coupons/{coupon['id']}/qr.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert api.get(f"/v1/coupons/{coupon['id']}/qr.svg").headers["Content-Type"].startswith("image/svg+xml")

    prefix, coupon_id, code, signature = coupon["qr_payload"].split(".")
    edited = f"{prefix}.{coupon_id}.{code}.{'0' if signature[0] != '0' else '1'}{signature[1:]}"
    refused = api.post("/v1/redemptions", json={"qr_payload": edited, "store_id": store["id"], "order_amount": 6000})
    assert (refused.status_code, refused.json()["error"]["code"]) == (404, "coupon_not_found")

    redeemed = api.post("/v1/redemptions", json={"qr_payload": coupon["qr_payload"], "store_id": store["id"],
                                                 "order_amount": 6000, "device_id": "till-1"})
    assert redeemed.status_code == 201, redeemed.text
    again = api.get(f"/v1/coupons/{coupon['code']}/check", params={"store_id": store["id"], "order_amount": 6000})
    assert again.json()["reason_code"] == "coupon_already_redeemed"
    assert again.json()["details"]["store_id"] == store["id"]

    assert api.get("/v1/settings/redemption").json() == {"reversal_window_minutes": 30}
    reversed_ = api.post(f"/v1/redemptions/{redeemed.json()['id']}/reverse", json={"reason": "wrong coupon"})
    assert reversed_.status_code == 200, reversed_.text
    assert reversed_.json()["reversal_reason"] == "wrong coupon"
    twice = api.post(f"/v1/redemptions/{redeemed.json()['id']}/reverse", json={"reason": "again"})
    assert (twice.status_code, twice.json()["error"]["code"]) == (409, "redemption_already_reversed")
    assert api.post("/v1/redemptions", json={"code": coupon["code"], "store_id": store["id"],
                                             "order_amount": 6000}).status_code == 201

    listed = api.get("/v1/redemptions", params={"store_id": store["id"]}).json()["data"]
    assert [r["reversed_at"] is not None for r in listed] == [False, True]
    results = [a["result"] for a in api.get("/v1/redemption-attempts", params={"store_id": store["id"]}).json()["data"]]
    assert results == ["ok", "check:coupon_already_redeemed", "ok", "coupon_not_found", "check:ok",
                       "check:coupon_threshold_not_met"]


def test_a_clerk_with_a_key_of_their_own_redeems_at_their_store_only_and_is_named_everywhere(platform):
    shop = open_shop(platform)
    owner: Api = shop["api"]
    store, other = shop["stores"]
    appointed = owner.post("/v1/staff", json={"name": "Wang Fang", "role": "clerk", "store_ids": [store["id"]]})
    assert appointed.status_code == 201, appointed.text
    clerk_id = appointed.json()["id"]
    clerk = Api(platform.url, appointed.json()["api_key"])

    order = owner.post("/v1/orders", headers={"Idempotency-Key": uuid.uuid4().hex}, json={
        "customer": {"external_id": "wx-openid-8"}, "items": [{"product_id": shop["product"]["id"], "quantity": 1}],
    }).json()
    assert owner.post(f"/v1/orders/{order['id']}/pay", json={"channel": "simulated"}).status_code == 200
    [coupon] = eventually(lambda: owner.get("/v1/coupons", params={"order_id": order["id"]}).json()["data"] or None)

    elsewhere = clerk.post("/v1/redemptions", json={"code": coupon["code"], "store_id": other["id"],
                                                    "order_amount": 6000})
    assert (elsewhere.status_code, elsewhere.json()["error"]["code"]) == (404, "store_not_found")
    no_catalog = clerk.post("/v1/categories", json={"name": "x"})
    assert (no_catalog.status_code, no_catalog.json()["error"]["code"]) == (403, "role_not_allowed")

    redeemed = clerk.post("/v1/redemptions", json={"code": coupon["code"], "store_id": store["id"],
                                                   "order_amount": 6000})
    assert redeemed.status_code == 201, redeemed.text
    assert redeemed.json()["operator_id"] == clerk_id
    listed = owner.get("/v1/redemptions", params={"operator_id": clerk_id}).json()["data"]
    assert [r["id"] for r in listed] == [redeemed.json()["id"]]
    audit = owner.get("/v1/audit-log", params={"actor_id": clerk_id}).json()["data"]
    assert [(e["path"], e["status"]) for e in audit] == [
        ("/v1/redemptions", 201), ("/v1/categories", 403), ("/v1/redemptions", 404)]
