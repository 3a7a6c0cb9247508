"""Staff, roles and the audit log: each member has a key of their own acting with their role and stores; the
gateway refuses what a role may not do, the services receive the member as the caller, and every change is
audited with who made it."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from weika_gateway.app import create_app
from weika_gateway.auth import ROLE_POLICY

CLERK_CAN = {"merchants.get_merchant", "redemptions.redeem_coupon", "redemptions.check_coupon"}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def appoint(client):
    """`appoint(by_headers, role, store_ids=(), name=...) -> (body, headers of the new member's key)`."""

    def make(by: dict[str, str], role: str, store_ids: tuple[str, ...] = (), name: str = "Li Na") -> tuple[Any, Any]:
        response = client.post("/v1/staff", json={"name": name, "role": role, "store_ids": list(store_ids)},
                               headers=by)
        assert response.status_code == 201, response.get_json()
        body = response.get_json()
        return body, auth(body["api_key"])

    return make


def test_the_owner_appoints_a_clerk_whose_key_acts_as_the_clerk_at_their_store(client, merchant, make_store,
                                                                                 appoint, fake):
    store = make_store(merchant.live)
    body, clerk = appoint(merchant.live, "clerk", (store["id"],))
    assert body["id"].startswith("stf_") and body["role"] == "clerk" and body["store_ids"] == [store["id"]]
    assert body["active"] is True and body["api_key"].startswith("wk_live_")
    assert body["api_key_hints"] == [f"wk_live_...{body['api_key'][-4:]}"]

    me = client.get("/v1/me", headers=clerk).get_json()
    assert me == {"merchant_id": merchant.id, "mode": "live", "role": "clerk", "staff_id": body["id"],
                  "name": "Li Na", "store_ids": [store["id"]]}

    response = client.post("/v1/redemptions", json={"code": "ABCD-EFGH", "store_id": store["id"]}, headers=clerk)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["operator_id"] == body["id"]  # the operator is the clerk, not a shared key
    caller = fake.calls_of("redeem_coupon")[-1].caller
    assert (caller.staff_id, caller.role, caller.store_ids) == (body["id"], "clerk", (store["id"],))


def test_a_clerk_cannot_redeem_at_another_store_or_change_the_catalog(client, merchant, make_store, appoint,
                                                                       coupon_product_body, assert_error, fake):
    store, other = make_store(merchant.live), make_store(merchant.live)
    _, clerk = appoint(merchant.live, "clerk", (store["id"],))
    # another store of the merchant is, to this clerk, a store that does not exist
    assert_error(client.post("/v1/redemptions", json={"code": "ABCD-EFGH", "store_id": other["id"]}, headers=clerk),
                 404, "store_not_found")
    assert not fake.calls_of("redeem_coupon")
    error = assert_error(client.post("/v1/products", json=coupon_product_body(), headers=clerk), 403,
                         "role_not_allowed")
    assert error["details"] == {"role": "clerk", "endpoint": "catalog.create_product"}
    assert not fake.calls_of("create_product")
    for path in ("/v1/staff", "/v1/audit-log", "/v1/settings/payment-channels", "/v1/customers",
                 "/v1/coupons?order_id=ord_1", "/v1/coupons/cpn_1/qr.svg"):  # codes are the customer's money
        assert_error(client.get(path, headers=clerk), 403, "role_not_allowed")
    assert not fake.calls_of("list_coupons")
    # the stores a clerk sees are the stores they work at
    assert [s["id"] for s in client.get("/v1/stores", headers=clerk).get_json()["data"]] == [store["id"]]
    assert_error(client.get(f"/v1/stores/{other['id']}", headers=clerk), 404, "store_not_found")


def test_an_analyst_reads_but_changes_nothing_and_sees_no_secrets(client, merchant, appoint, assert_error, fake,
                                                                 make_store):
    _, analyst = appoint(merchant.live, "analyst")
    assert client.get("/v1/stores", headers=analyst).status_code == 200
    assert client.get("/v1/reports/overview", headers=analyst).status_code == 200
    assert_error(client.post("/v1/stores", json={"name": "x", "code": "X-1"}, headers=analyst), 403,
                 "role_not_allowed")
    for path in ("/v1/products/prd_1/card-keys", "/v1/orders/ord_1/deliveries", "/v1/settings/payment-channels",
                 "/v1/coupons?order_id=ord_1"):
        assert_error(client.get(path, headers=analyst), 403, "role_not_allowed")
    assert not fake.calls_of("list_card_keys")


def test_store_roles_need_known_stores_and_only_the_owner_appoints_managers(client, merchant, make_store, appoint,
                                                                           assert_error):
    error = assert_error(client.post("/v1/staff", json={"name": "A", "role": "clerk"}, headers=merchant.live),
                         422, "invalid_request")
    assert error["details"]["field"] == "store_ids"
    assert_error(client.post("/v1/staff", json={"name": "A", "role": "clerk", "store_ids": ["sto_nope"]},
                             headers=merchant.live), 422, "unknown_store")
    assert_error(client.post("/v1/staff", json={"name": "A", "role": "owner"}, headers=merchant.live),
                 422, "invalid_request")
    # a test-mode store is not a live store
    test_store = make_store(merchant.test)
    assert_error(client.post("/v1/staff", json={"name": "A", "role": "clerk", "store_ids": [test_store["id"]]},
                             headers=merchant.live), 422, "unknown_store")

    for role in ("manager", "analyst"):  # roles for every store keep no store list
        error = assert_error(client.post("/v1/staff", json={"name": "A", "role": role, "store_ids": [test_store["id"]]},
                                         headers=merchant.test), 422, "invalid_request")
        assert error["details"]["field"] == "store_ids"

    manager_body, manager = appoint(merchant.live, "manager")
    assert_error(client.post("/v1/staff", json={"name": "B", "role": "manager"}, headers=manager), 403,
                 "role_not_assignable")
    assert_error(client.patch(f"/v1/staff/{manager_body['id']}", json={"active": False}, headers=manager), 403,
                 "role_not_assignable")
    store = make_store(merchant.live)
    clerk_body, _ = appoint(manager, "clerk", (store["id"],))  # a manager appoints store staff
    assert clerk_body["role"] == "clerk"
    assert [m["id"] for m in client.get("/v1/staff", headers=merchant.live).get_json()["data"]] == \
        [manager_body["id"], clerk_body["id"]]
    assert client.get("/v1/staff", headers=merchant.test).get_json()["data"] == []  # the test world has its own


def test_deactivating_or_rotating_stops_the_old_key_at_once(client, merchant, make_store, appoint, assert_error):
    store = make_store(merchant.live)
    body, clerk = appoint(merchant.live, "clerk", (store["id"],))
    assert client.get("/v1/me", headers=clerk).status_code == 200
    rotated = client.post(f"/v1/staff/{body['id']}/api-key", headers=merchant.live)
    assert rotated.status_code == 201
    new_key = auth(rotated.get_json()["api_key"])
    assert_error(client.get("/v1/me", headers=clerk), 401, "unauthenticated")
    assert client.get("/v1/me", headers=new_key).status_code == 200

    moved = client.patch(f"/v1/staff/{body['id']}", json={"role": "store_manager"}, headers=merchant.live)
    assert moved.status_code == 200 and moved.get_json()["role"] == "store_manager"
    assert moved.get_json()["store_ids"] == [store["id"]]
    assert client.get("/v1/me", headers=new_key).get_json()["role"] == "store_manager"

    analyst = client.patch(f"/v1/staff/{body['id']}", json={"role": "analyst"}, headers=merchant.live).get_json()
    assert (analyst["role"], analyst["store_ids"]) == ("analyst", [])  # a role for every store: the list goes
    back = client.patch(f"/v1/staff/{body['id']}", json={"role": "clerk", "store_ids": [store["id"]]},
                        headers=merchant.live)
    assert back.get_json()["store_ids"] == [store["id"]]

    off = client.patch(f"/v1/staff/{body['id']}", json={"active": False}, headers=merchant.live)
    assert off.status_code == 200 and off.get_json()["active"] is False and off.get_json()["api_key_hints"] == []
    assert_error(client.get("/v1/me", headers=new_key), 401, "unauthenticated")
    on = client.patch(f"/v1/staff/{body['id']}", json={"active": True}, headers=merchant.live)
    assert on.get_json()["active"] is True
    assert_error(client.get("/v1/me", headers=new_key), 401, "unauthenticated")  # old keys never come back
    assert_error(client.patch("/v1/staff/stf_nope", json={"active": False}, headers=merchant.live), 404,
                 "staff_not_found")
    assert_error(client.patch(f"/v1/staff/{body['id']}", json={"active": "no"}, headers=merchant.live), 422,
                 "invalid_request")


def test_every_change_is_audited_with_who_made_it_and_how_it_ended(client, merchant, make_store, appoint,
                                                                  coupon_product_body):
    store = make_store(merchant.live)
    clerk_body, clerk = appoint(merchant.live, "clerk", (store["id"],))
    client.post("/v1/redemptions", json={"code": "ABCD-EFGH", "store_id": store["id"]}, headers=clerk)
    client.post("/v1/products", json=coupon_product_body(), headers=clerk)  # refused: audited too
    client.get("/v1/stores", headers=clerk)  # a read: not audited

    log = client.get("/v1/audit-log", headers=merchant.live).get_json()["data"]
    assert [(e["actor_id"], e["role"], e["method"], e["path"], e["status"]) for e in log[:2]] == [
        (clerk_body["id"], "clerk", "POST", "/v1/products", 403),
        (clerk_body["id"], "clerk", "POST", "/v1/redemptions", 201),
    ]
    assert [e["path"] for e in log[2:]] == ["/v1/staff", "/v1/stores"]  # the owner's own changes
    assert all(e["request_id"] for e in log)
    mine = client.get(f"/v1/audit-log?actor_id={clerk_body['id']}&limit=1", headers=merchant.live).get_json()
    assert len(mine["data"]) == 1 and mine["next_cursor"]
    rest = client.get(f"/v1/audit-log?actor_id={clerk_body['id']}&cursor={mine['next_cursor']}",
                      headers=merchant.live).get_json()
    assert [e["status"] for e in rest["data"]] == [201] and rest["next_cursor"] is None
    assert client.get("/v1/audit-log", headers=merchant.test).get_json()["data"] == []
    for query in ("limit=²", "cursor=²", "cursor=99999999999999999999999", "limit=0"):
        response = client.get(f"/v1/audit-log?{query}", headers=merchant.live)
        assert response.status_code == 422, (query, response.get_json())


def test_every_endpoint_named_in_the_role_policy_exists(db, fake, settings):
    """A renamed view must not silently fall out of a role's permissions."""
    app: Flask = create_app(db, clients=fake, settings=settings)
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    for role, allowed in ROLE_POLICY.items():
        assert allowed is None or allowed <= endpoints, (role, allowed - endpoints)
    assert (ROLE_POLICY["clerk"] or set()) >= CLERK_CAN
