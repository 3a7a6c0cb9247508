"""The redemption routes beyond a plain redeem: check, QR payloads and images, reversal, the lists and the
reversal-window setting (fake redemption service)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import fakeredis
import grpc
import pytest
from cryptography.fernet import Fernet
from flask import Flask

from weika.redemption.v1 import redemption_pb2
from weika_gateway.app import create_app
from weika_gateway.config import GatewaySettings
from weika_kit import crypto
from weika_kit.errors import RemoteError
from weika_kit.protos import from_timestamp, to_timestamp

LIMIT = 2
NOW = datetime(2026, 6, 18, 8, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def secret_key(monkeypatch):
    monkeypatch.setenv("WEIKA_SECRET_KEY", Fernet.generate_key().decode())
    crypto._key.cache_clear()
    yield
    crypto._key.cache_clear()


@pytest.fixture
def app(db, fake) -> Flask:
    settings = GatewaySettings(admin_token="operator-token-for-tests", redeem_failure_limit=LIMIT,
                               redeem_failure_window_s=300)
    return create_app(db, clients=fake, settings=settings,
                      hot_state=fakeredis.FakeRedis(server=fakeredis.FakeServer()))


def unknown_code() -> RemoteError:
    return RemoteError(grpc.StatusCode.NOT_FOUND, "coupon_not_found", "No coupon has this code", {})


def coupon(**overrides: Any) -> redemption_pb2.Coupon:
    values: dict[str, Any] = {"id": "cpn_1", "status": "issued", "order_id": "ord_1", "product_id": "prd_1",
                              "face_value": 2000, "threshold": 10000, "uses_total": 1, "uses_left": 1,
                              "valid_from": to_timestamp(NOW), "valid_until": to_timestamp(NOW)}
    values.update(overrides)
    return redemption_pb2.Coupon(**values)


# --- check


def test_check_answers_200_with_the_reason_its_details_and_the_coupon_without_its_code(client, merchant, make_store,
                                                                                        fake):
    store = make_store(merchant.live)
    fake.redemption_answers["CheckCoupon"] = redemption_pb2.CheckCouponResponse(
        redeemable=False, reason_code="coupon_threshold_not_met", message="Coupon applies from ¥100.00: ¥15.00 short",
        coupon=coupon(code="SECRET"), details_json='{"shortfall": 1500, "threshold": 10000, "order_amount": 8500}')

    response = client.get(f"/v1/coupons/ABCD-EFGH/check?store_id={store['id']}&order_amount=8500",
                          headers=merchant.live)

    assert response.status_code == 200
    body = response.get_json()
    assert (body["redeemable"], body["reason_code"], body["details"]["shortfall"]) == (
        False, "coupon_threshold_not_met", 1500)
    assert body["coupon"]["id"] == "cpn_1" and "code" not in body["coupon"]
    [call] = fake.calls_of("redemption.CheckCoupon")
    assert (call.request.code, call.request.store_id, call.request.order_amount) == ("ABCD-EFGH", store["id"], 8500)


def test_a_redeemable_check_has_no_reason(client, merchant, make_store, fake):
    store = make_store(merchant.live)
    fake.redemption_answers["CheckCoupon"] = redemption_pb2.CheckCouponResponse(redeemable=True, coupon=coupon())

    body = client.get(f"/v1/coupons/X/check?store_id={store['id']}", headers=merchant.live).get_json()

    assert (body["redeemable"], body["reason_code"], body["details"]) == (True, None, {})


def test_check_needs_a_store_of_the_caller_and_a_whole_amount(client, merchant, make_merchant, make_store, fake,
                                                              assert_error):
    theirs = make_store(make_merchant("Other").live)
    mine = make_store(merchant.live)
    assert_error(client.get("/v1/coupons/X/check", headers=merchant.live), 422, "invalid_request")
    assert_error(client.get(f"/v1/coupons/X/check?store_id={theirs['id']}", headers=merchant.live), 404,
                 "store_not_found")
    assert_error(client.get(f"/v1/coupons/X/check?store_id={mine['id']}&order_amount=1.5", headers=merchant.live),
                 422, "invalid_request")
    assert fake.calls_of("redemption.CheckCoupon") == []


def test_unknown_codes_in_checks_count_against_the_same_limiter_as_redemptions(client, merchant, make_store, fake,
                                                                             assert_error):
    store = make_store(merchant.live)
    fake.fail("redemption.CheckCoupon", unknown_code())
    fake.fail("redeem_coupon", unknown_code())

    assert_error(client.get(f"/v1/coupons/X/check?store_id={store['id']}", headers=merchant.live), 404,
                 "coupon_not_found")
    assert_error(client.post("/v1/redemptions", json={"code": "Y", "store_id": store["id"]}, headers=merchant.live),
                 404, "coupon_not_found")

    blocked = client.get(f"/v1/coupons/X/check?store_id={store['id']}", headers=merchant.live)
    assert_error(blocked, 429, "too_many_attempts")
    assert int(blocked.headers["Retry-After"]) > 0
    assert_error(client.post("/v1/redemptions", json={"code": "Y", "store_id": store["id"]}, headers=merchant.live),
                 429, "too_many_attempts")
    assert len(fake.calls_of("redemption.CheckCoupon")) == 1


# --- redeem by QR payload


def test_a_qr_payload_is_passed_instead_of_a_code(client, merchant, make_store, fake):
    store = make_store(merchant.live)

    response = client.post("/v1/redemptions", json={"qr_payload": "WK1.cpn_1.ABC.sig", "store_id": store["id"]},
                           headers=merchant.live)

    assert response.status_code == 201
    [call] = fake.calls_of("redeem_coupon")
    assert (call.request.qr_payload, call.request.code) == ("WK1.cpn_1.ABC.sig", "")


def test_code_and_qr_payload_together_or_neither_is_invalid(client, merchant, make_store, fake, assert_error):
    store = make_store(merchant.live)
    for body in ({"store_id": store["id"]}, {"code": "A", "qr_payload": "WK1.x", "store_id": store["id"]}):
        error = assert_error(client.post("/v1/redemptions", json=body, headers=merchant.live), 422, "invalid_request")
        assert error["details"]["field"] == "code"
    assert fake.calls_of("redeem_coupon") == []


def test_an_edited_qr_counts_as_an_unknown_code(client, merchant, make_store, fake, assert_error):
    store = make_store(merchant.live)
    fake.fail("redeem_coupon", unknown_code())
    for _ in range(LIMIT):
        assert_error(client.post("/v1/redemptions", json={"qr_payload": "WK1.edited", "store_id": store["id"]},
                                 headers=merchant.live), 404, "coupon_not_found")
    assert_error(client.post("/v1/redemptions", json={"qr_payload": "WK1.edited", "store_id": store["id"]},
                             headers=merchant.live), 429, "too_many_attempts")


# --- QR images


@pytest.mark.parametrize(("suffix", "mimetype", "magic"), [("png", "image/png", b"\x89PNG"),
                                                             ("svg", "image/svg+xml", b"<?xml")])
def test_the_qr_image_encodes_the_coupons_signed_payload(client, merchant, fake, suffix, mimetype, magic):
    fake.redemption_answers["GetCoupon"] = coupon(code="ABCD", qr_payload="WK1.cpn_1.ABCD.0123456789abcdef")

    response = client.get(f"/v1/coupons/cpn_1/qr.{suffix}", headers=merchant.live)

    assert response.status_code == 200
    assert response.mimetype == mimetype and response.data.startswith(magic)
    assert response.headers["Cache-Control"] == "no-store"
    [call] = fake.calls_of("redemption.GetCoupon")
    assert call.request.coupon_id == "cpn_1"


def test_another_merchants_coupon_has_no_qr(client, merchant, fake, assert_error):
    fake.fail("redemption.GetCoupon", unknown_code())
    assert_error(client.get("/v1/coupons/cpn_9/qr.png", headers=merchant.live), 404, "coupon_not_found")
    assert_error(client.get("/v1/coupons/cpn_9/qr.gif", headers=merchant.live), 422, "invalid_request")


# --- reversal and its window


def test_a_reversal_sends_the_reason_and_answers_the_reversed_redemption(client, merchant, fake):
    fake.redemption_answers["ReverseRedemption"] = lambda request: redemption_pb2.Redemption(
        id=request.redemption_id, coupon_id="cpn_1", store_id="sto_1", redeemed_at=to_timestamp(NOW),
        reversed_at=to_timestamp(NOW), reversed_by="key_1", reversal_reason=request.reason)

    response = client.post("/v1/redemptions/rdm_1/reverse", json={"reason": "wrong coupon"}, headers=merchant.live)

    assert response.status_code == 200
    body = response.get_json()
    assert (body["id"], body["reversed_at"], body["reversal_reason"]) == ("rdm_1", "2026-06-18T08:00:00Z",
                                                                          "wrong coupon")


def test_a_reversal_needs_a_reason_and_passes_the_window_refusal_through(client, merchant, fake, assert_error):
    assert_error(client.post("/v1/redemptions/rdm_1/reverse", json={}, headers=merchant.live), 422, "invalid_request")
    fake.fail("redemption.ReverseRedemption", RemoteError(
        grpc.StatusCode.FAILED_PRECONDITION, "reversal_window_passed", "too late", {"reversal_window_minutes": "30"}))
    assert_error(client.post("/v1/redemptions/rdm_1/reverse", json={"reason": "x"}, headers=merchant.live), 409,
                 "reversal_window_passed")


def test_the_reversal_window_setting_is_read_and_written(client, merchant, fake, assert_error):
    fake.redemption_answers["GetRedemptionSettings"] = redemption_pb2.RedemptionSettings(reversal_window_minutes=30)
    fake.redemption_answers["UpdateRedemptionSettings"] = lambda request: request

    assert client.get("/v1/settings/redemption", headers=merchant.live).get_json() == {"reversal_window_minutes": 30}
    answer = client.put("/v1/settings/redemption", json={"reversal_window_minutes": 45}, headers=merchant.live)
    assert answer.get_json() == {"reversal_window_minutes": 45}
    assert_error(client.put("/v1/settings/redemption", json={"reversal_window_minutes": 0}, headers=merchant.live),
                 422, "invalid_request")


# --- lists


def test_redemptions_are_listed_with_filters_window_and_cursor(client, merchant, fake):
    fake.redemption_answers["ListRedemptions"] = redemption_pb2.ListRedemptionsResponse(
        redemptions=[redemption_pb2.Redemption(id="rdm_1", coupon_id="cpn_1", store_id="sto_1",
                                               redeemed_at=to_timestamp(NOW))], next_page_token="next")

    body = client.get("/v1/redemptions?store_id=sto_1&operator_id=stf_1&from=2026-06-01&to=2026-06-30&limit=5"
                      "&cursor=abc", headers=merchant.live).get_json()

    assert ([r["id"] for r in body["data"]], body["next_cursor"]) == (["rdm_1"], "next")
    [call] = fake.calls_of("redemption.ListRedemptions")
    sent = call.request
    assert (sent.store_id, sent.operator_id, sent.page_size, sent.page_token) == ("sto_1", "stf_1", 5, "abc")
    assert from_timestamp(getattr(sent, "from")) == datetime(2026, 6, 1, tzinfo=UTC)
    assert from_timestamp(sent.to) == datetime(2026, 7, 1, tzinfo=UTC)  # a bare `to` date covers that day


def test_attempts_are_listed_with_their_result(client, merchant, fake, assert_error):
    fake.redemption_answers["ListRedemptionAttempts"] = redemption_pb2.ListRedemptionAttemptsResponse(attempts=[
        redemption_pb2.RedemptionAttempt(id=7, store_id="sto_1", result="check:coupon_expired",
                                         at=to_timestamp(NOW), code_fingerprint="0123456789ab")])

    body = client.get("/v1/redemption-attempts?store_id=sto_1", headers=merchant.live).get_json()

    assert body == {"data": [{"id": 7, "coupon_id": None, "store_id": "sto_1", "operator_id": None,
                              "device_id": None, "result": "check:coupon_expired", "at": "2026-06-18T08:00:00Z",
                              "code_fingerprint": "0123456789ab"}], "next_cursor": None}
    assert_error(client.get("/v1/redemption-attempts?limit=0", headers=merchant.live), 422, "invalid_request")
