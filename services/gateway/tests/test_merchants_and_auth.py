"""Merchant creation by the operator, API keys shown once and stored hashed, and bearer authentication."""

from __future__ import annotations

import hashlib
import re

from flask import Flask
from sqlalchemy import select

from weika_gateway.adapters import tables as t
from weika_gateway.app import create_app
from weika_gateway.config import GatewaySettings

KEY_PATTERN = {"live": re.compile(r"wk_live_[A-Za-z0-9_-]{32}"), "test": re.compile(r"wk_test_[A-Za-z0-9_-]{32}")}


def test_operator_creates_a_merchant_with_one_live_and_one_test_key(client, operator):
    response = client.post("/v1/merchants", json={"name": "Tea House", "contact": "ops@tea.example"},
                           headers=operator)

    assert response.status_code == 201
    body = response.get_json()
    assert body["id"].startswith("mch_")
    assert body["name"] == "Tea House" and body["contact"] == "ops@tea.example"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["created_at"])
    assert KEY_PATTERN["live"].fullmatch(body["api_keys"]["live"])
    assert KEY_PATTERN["test"].fullmatch(body["api_keys"]["test"])


def test_merchant_creation_without_a_token_is_unauthenticated(client, assert_error):
    assert_error(client.post("/v1/merchants", json={"name": "X"}), 401, "unauthenticated")


def test_merchant_creation_with_a_wrong_token_is_unauthenticated(client, assert_error):
    response = client.post("/v1/merchants", json={"name": "X"}, headers={"Authorization": "Bearer not-the-token"})
    assert_error(response, 401, "unauthenticated")


def test_merchant_creation_with_a_merchant_api_key_is_forbidden(client, merchant, assert_error):
    response = client.post("/v1/merchants", json={"name": "X"}, headers=merchant.live)
    assert_error(response, 403, "operator_token_required")


def test_operator_endpoints_answer_503_when_no_operator_token_is_configured(db, fake, assert_error):
    app = create_app(db, clients=fake, settings=GatewaySettings(admin_token=None))
    response = app.test_client().post("/v1/merchants", json={"name": "X"}, headers={"Authorization": "Bearer "})
    assert_error(response, 503, "operator_token_not_configured")


def test_merchant_name_is_required(client, operator, assert_error):
    error = assert_error(client.post("/v1/merchants", json={"contact": "x"}, headers=operator), 422,
                         "invalid_request")
    assert error["details"]["field"] == "name"


def test_keys_are_stored_as_sha256_only_never_in_plaintext(client, operator, db):
    body = client.post("/v1/merchants", json={"name": "Tea House"}, headers=operator).get_json()
    live, test = body["api_keys"]["live"], body["api_keys"]["test"]

    with db.engine.connect() as conn:
        keys = {row.mode: row for row in conn.execute(select(t.api_keys))}
        every_value = [str(value) for table in t.metadata.sorted_tables
                       for row in conn.execute(select(table)) for value in row]

    assert keys["live"].key_hash == hashlib.sha256(live.encode()).hexdigest()
    assert keys["test"].key_hash == hashlib.sha256(test.encode()).hexdigest()
    assert not any(live in value or test in value for value in every_value)
    # the random part must not leak either (a hint keeps only the last four characters)
    assert not any(live[8:20] in value or test[8:20] in value for value in every_value)


def test_keys_are_shown_once_and_never_again(client, merchant):
    body = client.get("/v1/merchant", headers=merchant.live).get_json()
    assert body["id"] == merchant.id
    assert "api_keys" not in body
    assert merchant.live_key not in str(body) and merchant.test_key not in str(body)


def test_each_key_reads_its_merchant_in_its_own_mode(client, merchant):
    assert client.get("/v1/merchant", headers=merchant.live).get_json()["mode"] == "live"
    assert client.get("/v1/merchant", headers=merchant.test).get_json()["mode"] == "test"


def test_requests_without_or_with_an_unknown_key_are_unauthenticated(client, merchant, assert_error):
    assert_error(client.get("/v1/merchant"), 401, "unauthenticated")
    assert_error(client.get("/v1/merchant", headers={"Authorization": "Bearer wk_live_" + "x" * 32}), 401,
                 "unauthenticated")
    assert_error(client.get("/v1/merchant", headers={"Authorization": f"Basic {merchant.live_key}"}), 401,
                 "unauthenticated")


def test_the_operator_token_is_not_a_merchant_key(client, operator, assert_error):
    assert_error(client.get("/v1/stores", headers=operator), 401, "unauthenticated")


def test_a_revoked_key_no_longer_authenticates(client, merchant, db, assert_error):
    with db.engine.begin() as conn:
        conn.execute(t.api_keys.update().where(t.api_keys.c.mode == "live").values(revoked_at=db.clock()))
    assert_error(client.get("/v1/merchant", headers=merchant.live), 401, "unauthenticated")
    assert client.get("/v1/merchant", headers=merchant.test).status_code == 200


def test_service_calls_act_as_the_keys_merchant_mode_and_key(client, merchant, fake, db):
    client.get("/v1/categories", headers=merchant.test)

    caller = fake.calls_of("list_categories")[0].caller
    with db.engine.connect() as conn:
        test_key_id = conn.execute(select(t.api_keys.c.id).where(t.api_keys.c.mode == "test")).scalar_one()
    assert (caller.merchant_id, caller.mode, caller.staff_id, caller.role, caller.store_ids) == \
        (merchant.id, "test", test_key_id, "owner", ())


def test_create_app_reads_the_operator_token_from_the_environment(db, fake, monkeypatch):
    monkeypatch.setenv("WEIKA_ADMIN_TOKEN", "from-env")
    app: Flask = create_app(db, clients=fake)
    response = app.test_client().post("/v1/merchants", json={"name": "Env"},
                                      headers={"Authorization": "Bearer from-env"})
    assert response.status_code == 201
