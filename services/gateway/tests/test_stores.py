"""Stores belong to one merchant and one mode: codes unique there, invisible everywhere else."""

from __future__ import annotations


def test_a_store_is_created_with_its_fields(client, merchant):
    response = client.post("/v1/stores", json={"name": "Jing'an", "code": "SH-001", "region": "CN-SH",
                                               "address": "1 Nanjing Rd"}, headers=merchant.live)

    assert response.status_code == 201
    body = response.get_json()
    assert body["id"].startswith("sto_")
    assert {k: body[k] for k in ("name", "code", "region", "address")} == \
        {"name": "Jing'an", "code": "SH-001", "region": "CN-SH", "address": "1 Nanjing Rd"}
    assert body["created_at"].endswith("Z")
    assert client.get(f"/v1/stores/{body['id']}", headers=merchant.live).get_json() == body


def test_optional_store_fields_are_null_when_absent(client, merchant):
    body = client.post("/v1/stores", json={"name": "Pop-up", "code": "P1"}, headers=merchant.live).get_json()
    assert body["region"] is None and body["address"] is None


def test_a_second_store_with_the_same_code_is_refused(client, merchant, make_store, assert_error):
    make_store(merchant.live, code="SH-001")
    error = assert_error(client.post("/v1/stores", json={"name": "Again", "code": "SH-001"}, headers=merchant.live),
                         409, "store_code_taken")
    assert error["details"]["code"] == "SH-001"


def test_the_same_code_is_free_in_the_other_mode_and_for_another_merchant(client, merchant, make_merchant,
                                                                          make_store):
    make_store(merchant.live, code="SH-001")
    other = make_merchant("Other")
    make_store(merchant.test, code="SH-001")
    make_store(other.live, code="SH-001")


def test_a_test_key_cannot_see_live_stores_and_vice_versa(client, merchant, make_store, assert_error):
    live_store = make_store(merchant.live)
    test_store = make_store(merchant.test)

    assert [s["id"] for s in client.get("/v1/stores", headers=merchant.live).get_json()["data"]] == [live_store["id"]]
    assert [s["id"] for s in client.get("/v1/stores", headers=merchant.test).get_json()["data"]] == [test_store["id"]]
    assert_error(client.get(f"/v1/stores/{live_store['id']}", headers=merchant.test), 404, "store_not_found")
    assert_error(client.get(f"/v1/stores/{test_store['id']}", headers=merchant.live), 404, "store_not_found")


def test_another_merchants_store_is_not_found(client, merchant, make_merchant, make_store, assert_error):
    theirs = make_store(make_merchant("Rival").live)

    error = assert_error(client.get(f"/v1/stores/{theirs['id']}", headers=merchant.live), 404, "store_not_found")
    assert error["details"] == {"store_id": theirs["id"]}
    assert client.get("/v1/stores", headers=merchant.live).get_json() == {"data": []}


def test_stores_are_listed_oldest_first(client, merchant, make_store):
    first, second = make_store(merchant.live), make_store(merchant.live)
    listed = client.get("/v1/stores", headers=merchant.live).get_json()["data"]
    assert [s["id"] for s in listed] == [first["id"], second["id"]]


def test_store_fields_are_validated(client, merchant, assert_error):
    error = assert_error(client.post("/v1/stores", json={"name": "No code"}, headers=merchant.live), 422,
                         "invalid_request")
    assert error["details"]["field"] == "code"
    error = assert_error(client.post("/v1/stores", json={"name": "x", "code": "y" * 41}, headers=merchant.live),
                         422, "invalid_request")
    assert error["details"] == {"field": "code", "reason": "length", "max_length": 40}
