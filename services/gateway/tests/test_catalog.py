"""Categories and products through the catalog client: store ids checked here, shapes and integers in JSON."""

from __future__ import annotations

from datetime import UTC, datetime


def test_a_category_is_created_and_listed(client, merchant, fake):
    created = client.post("/v1/categories", json={"name": "Dining"}, headers=merchant.live)

    assert created.status_code == 201
    body = created.get_json()
    assert body["name"] == "Dining" and body["parent_id"] is None
    assert body["created_at"] == "2026-06-18T08:00:00Z"
    assert client.get("/v1/categories", headers=merchant.live).get_json() == {"data": [body]}
    assert fake.calls_of("create_category")[0].request.name == "Dining"


def test_a_coupon_product_is_sent_to_the_catalog_field_by_field(client, merchant, make_store, fake,
                                                                coupon_product_body):
    store = make_store(merchant.live)
    body = coupon_product_body(coupon={
        "face_value": 2000, "threshold": 10000, "store_ids": [store["id"]], "redeem_methods": ["qr"],
        "validity": {"mode": "fixed", "starts_at": "2026-06-18T00:00:00+08:00", "ends_at": "2026-06-30"}})

    response = client.post("/v1/products", json=body, headers=merchant.live)

    assert response.status_code == 201, response.get_json()
    sent = fake.calls_of("create_product")[0].request
    assert (sent.kind, sent.name, sent.price, sent.stock.mode, sent.stock.quantity) == \
        ("coupon", "618 ¥20 off", 990, "limited", 100)
    assert (sent.coupon.face_value, sent.coupon.threshold, list(sent.coupon.store_ids)) == \
        (2000, 10000, [store["id"]])
    assert sent.coupon.validity.starts_at.ToDatetime(tzinfo=UTC) == datetime(2026, 6, 17, 16, 0, tzinfo=UTC)
    assert sent.coupon.validity.ends_at.ToDatetime(tzinfo=UTC) == datetime(2026, 6, 30, tzinfo=UTC)


def test_product_response_has_integer_money_and_the_documented_shape(client, merchant, coupon_product_body):
    body = client.post("/v1/products", json=coupon_product_body(), headers=merchant.live).get_json()

    assert body["price"] == 990 and type(body["price"]) is int
    assert type(body["coupon"]["face_value"]) is int and type(body["coupon"]["threshold"]) is int
    assert body["stock"]["mode"] == "limited"
    assert body["stock"]["quantity"] == 100 and type(body["stock"]["quantity"]) is int
    assert body["coupon"]["validity"] == {"mode": "relative", "days": 30, "starts_after_days": 0}
    assert body["coupon"]["store_ids"] == [] and body["coupon"]["redeem_methods"] == ["qr", "code"]
    assert body["on_shelf"] is True
    assert set(body) >= {"id", "kind", "name", "description", "category_id", "price", "on_shelf", "stock",
                         "coupon", "created_at", "updated_at"}


def test_fixed_validity_comes_back_as_utc_iso_strings(client, merchant, coupon_product_body):
    coupon = {"face_value": 500, "redeem_methods": ["code"],
              "validity": {"mode": "fixed", "starts_at": "2026-06-18T08:00:00Z", "ends_at": "2026-06-20T08:00:00Z"}}
    body = client.post("/v1/products", json=coupon_product_body(coupon=coupon), headers=merchant.live).get_json()
    assert body["coupon"]["validity"] == {"mode": "fixed", "starts_at": "2026-06-18T08:00:00Z",
                                          "ends_at": "2026-06-20T08:00:00Z"}


def test_unlimited_stock_has_a_null_quantity(client, merchant, coupon_product_body):
    body = client.post("/v1/products", json=coupon_product_body(stock={"mode": "unlimited"}),
                       headers=merchant.live).get_json()
    assert body["stock"]["mode"] == "unlimited" and body["stock"]["quantity"] is None


def test_a_store_id_that_is_not_the_merchants_is_an_unknown_store(client, merchant, make_merchant, make_store,
                                                                  fake, assert_error, coupon_product_body):
    mine = make_store(merchant.live)
    theirs = make_store(make_merchant("Rival").live)
    body = coupon_product_body()
    body["coupon"]["store_ids"] = [mine["id"], theirs["id"]]

    error = assert_error(client.post("/v1/products", json=body, headers=merchant.live), 422, "unknown_store")

    assert error["details"] == {"store_id": theirs["id"]}
    assert fake.calls_of("create_product") == []


def test_a_live_store_is_unknown_to_a_test_mode_product(client, merchant, make_store, assert_error,
                                                        coupon_product_body):
    live_store = make_store(merchant.live)
    body = coupon_product_body()
    body["coupon"]["store_ids"] = [live_store["id"]]

    error = assert_error(client.post("/v1/products", json=body, headers=merchant.test), 422, "unknown_store")
    assert error["details"]["store_id"] == live_store["id"]


def test_a_product_is_read_back_through_the_catalog(client, merchant, coupon_product_body, assert_error):
    created = client.post("/v1/products", json=coupon_product_body(), headers=merchant.live).get_json()

    assert client.get(f"/v1/products/{created['id']}", headers=merchant.live).get_json() == created
    assert_error(client.get(f"/v1/products/{created['id']}", headers=merchant.test), 404, "product_not_found")
