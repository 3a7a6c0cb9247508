"""One error envelope for everything: service refusals by gRPC status, bad JSON, bad fields, routing, size."""

from __future__ import annotations

import grpc
import pytest

from weika_kit.errors import RemoteError

SERVICE_REFUSALS = [
    (grpc.StatusCode.INVALID_ARGUMENT, "invalid_product", 422, "invalid_product"),
    (grpc.StatusCode.NOT_FOUND, "category_not_found", 404, "category_not_found"),
    (grpc.StatusCode.FAILED_PRECONDITION, "out_of_stock", 409, "out_of_stock"),
    (grpc.StatusCode.ALREADY_EXISTS, "category_exists", 409, "category_exists"),
    (grpc.StatusCode.ABORTED, "concurrent_update", 409, "concurrent_update"),
    (grpc.StatusCode.PERMISSION_DENIED, "store_not_allowed", 403, "store_not_allowed"),
    (grpc.StatusCode.UNAUTHENTICATED, "caller_required", 401, "caller_required"),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, "too_many_attempts", 429, "too_many_attempts"),
    (grpc.StatusCode.UNAVAILABLE, "service_unavailable", 503, "service_unavailable"),
    (grpc.StatusCode.DEADLINE_EXCEEDED, "service_timeout", 504, "service_timeout"),
    (grpc.StatusCode.INTERNAL, "internal_error", 500, "internal_error"),
    (grpc.StatusCode.UNKNOWN, "internal_error", 500, "internal_error"),
    (grpc.StatusCode.UNIMPLEMENTED, "internal_error", 500, "internal_error"),
]


@pytest.mark.parametrize(("status", "remote_code", "http_status", "code"), SERVICE_REFUSALS,
                         ids=[s[0].name for s in SERVICE_REFUSALS])
def test_service_errors_map_to_http_status_and_keep_their_code(client, merchant, fake, assert_error, status,
                                                               remote_code, http_status, code):
    fake.fail("create_category", RemoteError(status, remote_code, f"refused: {remote_code}", {"product_id": "p1"}))

    response = client.post("/v1/categories", json={"name": "Dining"}, headers=merchant.live)

    error = assert_error(response, http_status, code)
    if http_status < 500:
        assert error["message"] == f"refused: {remote_code}"
        assert error["details"] == {"product_id": "p1"}


def test_an_internal_service_error_shows_the_request_id_and_nothing_of_the_remote_message(
        client, merchant, fake, assert_error):
    fake.fail("create_category", RemoteError(grpc.StatusCode.UNKNOWN, "internal_error",
                                             'Traceback (most recent call last): File "secret.py"', {}))

    response = client.post("/v1/categories", json={"name": "Dining"}, headers={**merchant.live,
                                                                              "X-Request-Id": "req-500"})

    error = assert_error(response, 500, "internal_error")
    assert error["details"] == {"request_id": "req-500"}
    assert "req-500" in error["message"]
    assert "Traceback" not in response.get_data(as_text=True)


def test_an_unexpected_exception_is_a_500_envelope_without_a_traceback(client, merchant, fake, assert_error):
    fake.fail("list_categories", ZeroDivisionError("division by zero in secret_module.py"))

    response = client.get("/v1/categories", headers=merchant.live)

    error = assert_error(response, 500, "internal_error")
    assert error["details"]["request_id"] == response.headers["X-Request-Id"]
    assert "secret_module" not in response.get_data(as_text=True)


def test_an_unavailable_service_is_named_in_the_503(client, merchant, fake, assert_error):
    fake.fail("list_categories", RemoteError(grpc.StatusCode.UNAVAILABLE, "service_unavailable", "connect failed",
                                             {"service": "catalog"}))
    error = assert_error(client.get("/v1/categories", headers=merchant.live), 503, "service_unavailable")
    assert error["details"]["service"] == "catalog"
    assert "catalog" in error["message"]


def test_malformed_json_is_400_invalid_json(client, merchant, assert_error):
    response = client.post("/v1/stores", data=b'{"name": "x", "code": ', headers=merchant.live,
                           content_type="application/json")
    assert_error(response, 400, "invalid_json")


def test_non_utf8_and_nan_bodies_are_invalid_json(client, merchant, assert_error):
    assert_error(client.post("/v1/stores", data=b'\xff\xfe{}', headers=merchant.live), 400, "invalid_json")
    assert_error(client.post("/v1/stores", data=b'{"name": NaN}', headers=merchant.live), 400, "invalid_json")


def test_a_body_that_is_not_an_object_is_422(client, merchant, assert_error):
    assert_error(client.post("/v1/stores", json=["name"], headers=merchant.live), 422, "invalid_request")


@pytest.mark.parametrize(("body", "field", "reason"), [
    ({"code": "S1"}, "name", "required"),
    ({"name": "  ", "code": "S1"}, "name", "required"),
    ({"name": 42, "code": "S1"}, "name", "type"),
    ({"name": "x", "code": "S1", "address": ["a"]}, "address", "type"),
])
def test_store_schema_errors_name_the_field(client, merchant, assert_error, body, field, reason):
    error = assert_error(client.post("/v1/stores", json=body, headers=merchant.live), 422, "invalid_request")
    assert (error["details"]["field"], error["details"]["reason"]) == (field, reason)


@pytest.mark.parametrize(("change", "field", "reason"), [
    ({"price": "990"}, "price", "type"),
    ({"price": 9.9}, "price", "type"),
    ({"price": True}, "price", "type"),
    ({"price": -1}, "price", "range"),
    ({"price": 2**63}, "price", "range"),
    ({"kind": "gift"}, "kind", "choice"),
    ({"stock": {"mode": "limited"}}, "stock.quantity", "required"),
    ({"stock": {"mode": "plenty"}}, "stock.mode", "choice"),
    ({"coupon": {"face_value": 2000, "redeem_methods": ["qr"], "validity": {"mode": "relative"}}},
     "coupon.validity.days", "required"),
    ({"coupon": {"face_value": 2000, "redeem_methods": ["qr"],
                 "validity": {"mode": "fixed", "starts_at": "2026-06-18T00:00:00Z", "ends_at": "soon"}}},
     "coupon.validity.ends_at", "format"),
    ({"coupon": {"face_value": 2000, "redeem_methods": "qr", "validity": {"mode": "relative", "days": 3}}},
     "coupon.redeem_methods", "type"),
    ({"coupon": {"face_value": 2000, "redeem_methods": ["qr"], "store_ids": [7],
                 "validity": {"mode": "relative", "days": 3}}}, "coupon.store_ids[0]", "type"),
])
def test_product_schema_errors_name_the_nested_field(client, merchant, fake, assert_error, coupon_product_body,
                                                     change, field, reason):
    error = assert_error(client.post("/v1/products", json=coupon_product_body(**change), headers=merchant.live),
                         422, "invalid_request")
    assert (error["details"]["field"], error["details"]["reason"]) == (field, reason)
    assert fake.calls_of("create_product") == []


def test_an_unknown_route_is_404_not_found(client, assert_error):
    assert_error(client.get("/v1/nowhere"), 404, "not_found")


def test_a_wrong_method_is_405_and_says_which_are_allowed(client, assert_error):
    response = client.delete("/v1/stores")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"] and "GET" in response.headers["Allow"]


def test_a_body_over_one_mebibyte_is_413(client, merchant, assert_error):
    huge = b'{"name": "' + b"x" * (1024 * 1024) + b'"}'
    assert_error(client.post("/v1/stores", data=huge, headers=merchant.live, content_type="application/json"),
                 413, "payload_too_large")


@pytest.mark.parametrize("path", ["/v1/orders?limit=²", "/v1/products?limit=²", "/v1/redemptions?limit=²",
                                  "/v1/redemption-attempts?limit=%D9%A3", "/v1/customers?limit=1" + "0" * 30,
                                  "/v1/orders?limit=" + "9" * 5000])
def test_numbers_in_the_query_that_int_refuses_are_422_not_500(client, merchant, path):
    response = client.get(path, headers=merchant.live)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["details"]["field"] == "limit"
