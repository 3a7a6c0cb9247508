"""Orders: Idempotency-Key required, fingerprint of the canonical body, 201 then 200 on replay, payment."""

from __future__ import annotations

import hashlib
import json

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from weika_kit.errors import RemoteError


def post_order(client, headers, body, key="order-key-1"):
    return client.post("/v1/orders", json=body, headers={**headers, "Idempotency-Key": key})


def test_an_order_needs_an_idempotency_key(client, merchant, fake, order_body, assert_error):
    assert_error(client.post("/v1/orders", json=order_body(), headers=merchant.live), 422,
                 "idempotency_key_required")
    assert fake.calls_of("create_order") == []


def test_an_idempotency_key_longer_than_255_characters_is_refused(client, merchant, order_body, assert_error):
    assert post_order(client, merchant.live, order_body(), key="k" * 255).status_code == 201
    error = assert_error(post_order(client, merchant.live, order_body(), key="k" * 256), 422, "invalid_request")
    assert error["details"]["field"] == "Idempotency-Key"


def test_an_order_is_created_pending_payment_with_integer_amounts(client, merchant, order_body):
    response = post_order(client, merchant.live, order_body())

    assert response.status_code == 201
    body = response.get_json()
    assert body["status"] == "pending_payment"
    for name in ("total_amount", "discount_amount", "payable_amount"):
        assert type(body[name]) is int, name
    assert body["total_amount"] == 2000 and body["payable_amount"] == 2000
    line = body["lines"][0]
    assert (line["quantity"], line["unit_price"], line["line_amount"]) == (2, 1000, 2000)
    assert all(type(line[k]) is int for k in ("quantity", "unit_price", "line_amount"))
    assert body["customer"]["phone"] == "138****5678"
    assert body["paid_at"] is None and body["created_at"] == "2026-06-18T08:00:00Z"


def test_the_fingerprint_is_the_sha256_of_the_canonical_body_whatever_its_key_order(client, merchant, fake):
    body = {"items": [{"quantity": 1, "product_id": "prd_1"}], "customer": {"region": "CN-SH", "external_id": "m1"}}
    reordered = '{"customer":{"external_id":"m1","region":"CN-SH"},"items":[{"product_id":"prd_1","quantity":1}]}'

    post_order(client, merchant.live, body, key="a")
    client.post("/v1/orders", data=reordered, content_type="application/json",
                headers={**merchant.live, "Idempotency-Key": "b"})

    first, second = (c.request.request_fingerprint for c in fake.calls_of("create_order"))
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    assert first == second == hashlib.sha256(canonical.encode()).hexdigest()


def test_a_different_body_has_a_different_fingerprint(client, merchant, fake, order_body):
    post_order(client, merchant.live, order_body(), key="a")
    post_order(client, merchant.live, order_body(items=[{"product_id": "prd_1", "quantity": 3}]), key="b")
    first, second = (c.request.request_fingerprint for c in fake.calls_of("create_order"))
    assert first != second


def test_a_replay_with_the_same_key_and_body_returns_the_same_order_with_200(client, merchant, fake, order_body):
    first = post_order(client, merchant.live, order_body())
    replay = post_order(client, merchant.live, order_body())

    assert (first.status_code, replay.status_code) == (201, 200)
    assert replay.get_json() == first.get_json()
    assert [c.request.idempotency_key for c in fake.calls_of("create_order")] == ["order-key-1", "order-key-1"]


def test_the_same_key_in_the_other_mode_is_a_new_order(client, merchant, order_body):
    live = post_order(client, merchant.live, order_body())
    test = post_order(client, merchant.test, order_body())
    assert (live.status_code, test.status_code) == (201, 201)
    assert live.get_json()["id"] != test.get_json()["id"]


def test_a_reused_key_with_another_body_is_refused(client, merchant, order_body, assert_error):
    post_order(client, merchant.live, order_body())
    response = post_order(client, merchant.live, order_body(items=[{"product_id": "prd_2", "quantity": 1}]))
    assert_error(response, 422, "idempotency_key_reused")


def test_out_of_stock_is_409_with_the_services_details(client, merchant, fake, order_body, assert_error):
    fake.fail("create_order", RemoteError(grpc.StatusCode.FAILED_PRECONDITION, "out_of_stock",
                                          "618 coupon is out of stock", {"product_id": "prd_1", "available": "0"}))
    error = assert_error(post_order(client, merchant.live, order_body()), 409, "out_of_stock")
    assert error["details"] == {"product_id": "prd_1", "available": "0"}


def test_an_order_at_a_store_that_is_not_the_merchants_is_refused(client, merchant, make_store, fake,
                                                                  order_body, assert_error):
    test_store = make_store(merchant.test)
    error = assert_error(post_order(client, merchant.live, order_body(store_id=test_store["id"])), 422,
                         "unknown_store")
    assert error["details"] == {"store_id": test_store["id"]}
    assert fake.calls_of("create_order") == []


def test_order_items_are_validated(client, merchant, order_body, assert_error):
    error = assert_error(post_order(client, merchant.live, order_body(items=[])), 422, "invalid_request")
    assert error["details"]["field"] == "items"
    error = assert_error(post_order(client, merchant.live, order_body(items=[{"product_id": "p", "quantity": 0}])),
                         422, "invalid_request")
    assert error["details"]["field"] == "items[0].quantity"
    error = assert_error(post_order(client, merchant.live, order_body(customer={"phone": "1"})), 422,
                         "invalid_request")
    assert error["details"]["field"] == "customer.external_id"


def test_paying_an_order_returns_it_paid(client, merchant, fake, order_body):
    order = post_order(client, merchant.test, order_body()).get_json()

    response = client.post(f"/v1/orders/{order['id']}/pay", json={"channel": "simulated"}, headers=merchant.test)

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "paid" and body["paid_amount"] == 2000 and body["channel"] == "simulated"
    assert body["paid_at"] == "2026-06-18T08:00:00Z"
    assert fake.calls_of("pay_order")[0].request.order_id == order["id"]
    assert client.get(f"/v1/orders/{order['id']}", headers=merchant.test).get_json() == body


def test_an_order_shows_the_payments_returned_to_the_customer(client, merchant, fake, order_body):
    order = post_order(client, merchant.live, order_body()).get_json()
    stored = next(o for (_, _, order_id), o in fake.orders.items() if order_id == order["id"])
    stored.returned_payments.add(channel="wechat", amount=2000, status="refunded", provider_status="processing",
                                 created_at=Timestamp(seconds=1781769600))

    body = client.get(f"/v1/orders/{order['id']}", headers=merchant.live).get_json()

    assert order["returned_payments"] == []
    assert body["returned_payments"] == [{"channel": "wechat", "amount": 2000, "status": "refunded",
                                          "provider_status": "processing", "created_at": "2026-06-18T08:00:00Z"}]


def test_an_order_shows_its_refunds_and_where_their_money_is(client, merchant, fake, order_body):
    order = post_order(client, merchant.live, order_body()).get_json()
    stored = next(o for (_, _, order_id), o in fake.orders.items() if order_id == order["id"])
    refund = stored.refunds.add(id="rfd_1", order_id=order["id"], status="succeeded", amount=1500, reason="customer_request",
                                voided_coupon_ids=["cpn_1"], provider_status="processing",
                                created_at=Timestamp(seconds=1781769600))
    refund.items.add(product_id="prd_1", quantity=1)

    body = client.get(f"/v1/orders/{order['id']}", headers=merchant.live).get_json()

    assert order["refunds"] == []
    assert body["refunds"] == [{"id": "rfd_1", "status": "succeeded", "amount": 1500, "reason": "customer_request",
                                "items": [{"product_id": "prd_1", "quantity": 1}], "voided_coupon_ids": ["cpn_1"],
                                "provider_status": "processing", "created_at": "2026-06-18T08:00:00Z"}]


def test_another_merchants_order_is_not_found(client, merchant, make_merchant, order_body, assert_error):
    order = post_order(client, merchant.live, order_body()).get_json()
    rival = make_merchant("Rival")
    assert_error(client.get(f"/v1/orders/{order['id']}", headers=rival.live), 404, "order_not_found")
