"""Coupons of an order, redemption at the caller's own store, and the overview report's window."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc

from weika.redemption.v1 import redemption_pb2
from weika_kit.errors import RemoteError
from weika_kit.protos import to_timestamp


def issued_coupon(number: int, order_id: str = "ord_1") -> redemption_pb2.Coupon:
    return redemption_pb2.Coupon(
        id=f"cpn_{number}", code=f"CODE{number:04d}", status="issued", order_id=order_id, product_id="prd_1",
        customer_id="cus_1", face_value=2000, threshold=10000, store_ids=["sto_1"], redeem_methods=["qr", "code"],
        valid_from=to_timestamp(datetime(2026, 6, 18, tzinfo=UTC)),
        valid_until=to_timestamp(datetime(2026, 7, 18, tzinfo=UTC)),
        issued_at=to_timestamp(datetime(2026, 6, 18, 8, 0, 5, tzinfo=UTC)))


def test_coupons_need_an_order_id(client, merchant, assert_error):
    error = assert_error(client.get("/v1/coupons", headers=merchant.live), 422, "invalid_request")
    assert error["details"]["field"] == "order_id"


def test_every_page_of_an_orders_coupons_is_returned(client, merchant, fake):
    fake.coupons["ord_1"] = [issued_coupon(n) for n in range(5)]  # pages of 2: three calls

    body = client.get("/v1/coupons?order_id=ord_1", headers=merchant.live).get_json()

    assert [c["id"] for c in body["data"]] == [f"cpn_{n}" for n in range(5)]
    assert len(fake.calls_of("list_coupons")) == 3


def test_a_coupon_has_the_documented_fields_with_nulls_for_unset_ones(client, merchant, fake):
    fake.coupons["ord_1"] = [issued_coupon(1)]

    coupon = client.get("/v1/coupons?order_id=ord_1", headers=merchant.live).get_json()["data"][0]

    assert coupon == {
        "id": "cpn_1", "code": "CODE0001", "status": "issued", "order_id": "ord_1", "product_id": "prd_1",
        "customer_id": "cus_1", "face_value": 2000, "threshold": 10000, "store_ids": ["sto_1"],
        "redeem_methods": ["qr", "code"], "valid_from": "2026-06-18T00:00:00Z",
        "valid_until": "2026-07-18T00:00:00Z", "issued_at": "2026-06-18T08:00:05Z", "redeemed_at": None,
        "redeemed_store_id": None, "redeemed_by": None, "uses_total": 0, "uses_left": 0, "usage_windows": [],
        "qr_payload": None}


def test_a_coupon_is_redeemed_at_the_callers_store(client, merchant, make_store, fake):
    store = make_store(merchant.live)

    response = client.post("/v1/redemptions", json={"code": "CODE0001", "store_id": store["id"],
                                                    "order_amount": 12_000, "device_id": "till-1"},
                           headers=merchant.live)

    assert response.status_code == 201
    body = response.get_json()
    assert body["store_id"] == store["id"] and body["coupon_id"] == "cpn_1"
    assert body["order_amount"] == 12_000 and type(body["face_value"]) is int
    assert body["redeemed_at"] == "2026-06-18T08:00:00Z"
    sent = fake.calls_of("redeem_coupon")[0].request
    assert (sent.code, sent.store_id, sent.order_amount, sent.device_id) == ("CODE0001", store["id"], 12_000,
                                                                              "till-1")


def test_redeeming_at_another_merchants_store_is_store_not_found(client, merchant, make_merchant, make_store, fake,
                                                                 assert_error):
    theirs = make_store(make_merchant("Rival").live)
    error = assert_error(client.post("/v1/redemptions", json={"code": "CODE0001", "store_id": theirs["id"]},
                                     headers=merchant.live), 404, "store_not_found")
    assert error["details"] == {"store_id": theirs["id"]}
    assert fake.calls_of("redeem_coupon") == []


def test_redeeming_at_a_store_of_the_other_mode_is_store_not_found(client, merchant, make_store, assert_error):
    live_store = make_store(merchant.live)
    assert_error(client.post("/v1/redemptions", json={"code": "C", "store_id": live_store["id"]},
                             headers=merchant.test), 404, "store_not_found")


def test_redemption_refusals_pass_through_with_their_code(client, merchant, make_store, fake, assert_error):
    store = make_store(merchant.live)
    fake.fail("redeem_coupon", RemoteError(grpc.StatusCode.FAILED_PRECONDITION, "coupon_already_redeemed",
                                           "this coupon was redeemed on 2026-06-18", {"coupon_id": "cpn_1"}))
    error = assert_error(client.post("/v1/redemptions", json={"code": "C", "store_id": store["id"]},
                                     headers=merchant.live), 409, "coupon_already_redeemed")
    assert error["message"] == "this coupon was redeemed on 2026-06-18"


def test_the_overview_window_is_sent_as_timestamps_with_a_bare_to_date_covering_that_day(client, merchant, fake):
    body = client.get("/v1/reports/overview?from=2026-06-01&to=2026-06-18", headers=merchant.live).get_json()

    sent = fake.calls_of("get_overview")[0].request
    assert sent.start_time.ToDatetime(tzinfo=UTC) == datetime(2026, 6, 1, tzinfo=UTC)
    assert sent.end_time.ToDatetime(tzinfo=UTC) == datetime(2026, 6, 19, tzinfo=UTC)
    assert (body["orders_paid"], body["gmv"], body["coupons_issued"], body["coupons_redeemed"]) == (3, 29_700, 4, 1)
    assert all(type(body[k]) is int for k in ("orders_paid", "gmv", "coupons_issued", "coupons_redeemed"))
    assert body["redemption_rate"] == 0.25


def test_the_overview_accepts_datetimes_and_an_open_window(client, merchant, fake):
    client.get("/v1/reports/overview?from=2026-06-18T08:00:00%2B08:00", headers=merchant.live)
    sent = fake.calls_of("get_overview")[0].request
    assert sent.start_time.ToDatetime(tzinfo=UTC) == datetime(2026, 6, 18, 0, 0, tzinfo=UTC)
    assert not sent.HasField("end_time")


def test_a_bad_overview_date_is_invalid_request(client, merchant, fake, assert_error):
    error = assert_error(client.get("/v1/reports/overview?from=yesterday", headers=merchant.live), 422,
                         "invalid_request")
    assert error["details"]["field"] == "from"
    error = assert_error(client.get("/v1/reports/overview?from=2026-06-18&to=2026-06-01", headers=merchant.live),
                         422, "invalid_request")
    assert error["details"]["field"] == "to"
    assert fake.calls_of("get_overview") == []
