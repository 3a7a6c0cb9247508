"""The full catalog's REST routes (categories, product lists and PATCH, stock moves, card keys, deliveries,
Excel import) against a fake catalog: what each route sends, and the JSON and status it answers."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from openpyxl import Workbook

from weika.catalog.v1 import catalog_pb2
from weika_kit.errors import RemoteError

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass
class FakeCatalog:
    """`answers[method]` is returned (or raised) for each call of that CatalogService RPC; calls are kept."""

    answers: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[str, Any, Any]] = field(default_factory=list)

    def __call__(self, caller: Any, method: str, request: Any) -> Any:
        self.calls.append((method, caller, request))
        answer = self.answers.get(method)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def sent(self, method: str) -> Any:
        return [request for name, _, request in self.calls if name == method][-1]


@pytest.fixture
def catalog(fake) -> FakeCatalog:
    fake.catalog = FakeCatalog()
    return fake.catalog


def category(id: str, name: str, parent_id: str = "", position: int = 0) -> catalog_pb2.Category:
    return catalog_pb2.Category(id=id, name=name, parent_id=parent_id, position=position)


def product(**changes: Any) -> catalog_pb2.Product:
    values: dict[str, Any] = {"id": "prd_1", "kind": "virtual", "name": "视频会员", "category_id": "cat_1",
                              "price": 1990, "on_shelf": True, "stock": catalog_pb2.StockSpec(mode="limited", quantity=7),
                              "virtual": catalog_pb2.VirtualSpec(delivery="card_key", low_stock_threshold=10,
                                                                 card_keys_available=7, low_on_stock=True)}
    return catalog_pb2.Product(**{**values, **changes})


def test_categories_list_flat_with_parent_or_as_a_tree(client, merchant, fake):
    fake.categories[(merchant.id, "live")] = [category("cat_a", "券"), category("cat_b", "餐饮券", "cat_a", 0),
                                              category("cat_c", "零售券", "cat_a", 1), category("cat_d", "实物", "", 1)]
    flat = client.get("/v1/categories", headers=merchant.live).get_json()["data"]
    assert [(c["id"], c["parent_id"], c["position"]) for c in flat] == [
        ("cat_a", None, 0), ("cat_b", "cat_a", 0), ("cat_c", "cat_a", 1), ("cat_d", None, 1)]
    tree = client.get("/v1/categories?view=tree", headers=merchant.live).get_json()["data"]
    assert [(c["id"], [k["id"] for k in c["children"]]) for c in tree] == [("cat_a", ["cat_b", "cat_c"]),
                                                                           ("cat_d", [])]
    assert client.get("/v1/categories?view=graph", headers=merchant.live).status_code == 422


def test_patch_category_sends_only_what_changes(client, merchant, catalog):
    catalog.answers["UpdateCategory"] = category("cat_a", "餐饮", position=3)
    response = client.patch("/v1/categories/cat_a", json={"position": 3}, headers=merchant.live)
    assert response.status_code == 200 and response.get_json()["position"] == 3
    sent = catalog.sent("UpdateCategory")
    assert sent.category_id == "cat_a" and sent.HasField("position") and not sent.HasField("name")


def test_deleting_a_non_empty_category_is_409_category_not_empty(client, merchant, catalog, assert_error):
    catalog.answers["DeleteCategory"] = catalog_pb2.DeleteCategoryResponse()
    assert client.delete("/v1/categories/cat_a", headers=merchant.live).status_code == 204
    catalog.answers["DeleteCategory"] = RemoteError(grpc.StatusCode.FAILED_PRECONDITION, "category_not_empty",
                                                    "category cat_a still holds 2 product(s)", {"products": "2"})
    body = assert_error(client.delete("/v1/categories/cat_a", headers=merchant.live), 409, "category_not_empty")
    assert body["details"] == {"products": "2"}


def test_product_list_passes_filters_and_returns_the_next_cursor(client, merchant, catalog):
    catalog.answers["ListProducts"] = catalog_pb2.ListProductsResponse(products=[product()], next_cursor="abc")
    body = client.get("/v1/products?kind=virtual&category_id=cat_1&on_shelf=false&q=会员&limit=5&cursor=xyz",
                      headers=merchant.live).get_json()
    sent = catalog.sent("ListProducts")
    assert (sent.kind, sent.category_id, sent.on_shelf, sent.text, sent.limit, sent.cursor) == (
        "virtual", "cat_1", False, "会员", 5, "xyz")
    assert body["next_cursor"] == "abc"
    assert body["data"][0]["virtual"] == {"delivery": "card_key", "supplier_sku": None, "low_stock_threshold": 10,
                                          "card_keys_available": 7, "low_on_stock": True}
    client.get("/v1/products", headers=merchant.live)
    assert not catalog.sent("ListProducts").HasField("on_shelf")


@pytest.mark.parametrize("query", ["limit=101", "limit=0", "limit=x", "kind=food", "on_shelf=yes"])
def test_bad_list_parameters_are_422(client, merchant, catalog, query):
    assert client.get(f"/v1/products?{query}", headers=merchant.live).status_code == 422
    assert catalog.calls == []


def test_patch_product_sends_set_fields_and_the_stock_adjustment(client, merchant, catalog):
    catalog.answers["UpdateProduct"] = product(price=2500)
    response = client.patch("/v1/products/prd_1", headers=merchant.live, json={
        "price": 2500, "on_shelf": False, "stock": {"adjustment": -3, "reason": "damaged"}})
    assert response.status_code == 200 and response.get_json()["price"] == 2500
    sent = catalog.sent("UpdateProduct")
    assert (sent.price, sent.on_shelf, sent.stock_adjustment, sent.stock_reason) == (2500, False, -3, "damaged")
    assert not sent.HasField("name") and not sent.HasField("description")
    bad = client.patch("/v1/products/prd_1", headers=merchant.live, json={"on_shelf": "no"})
    assert bad.status_code == 422 and bad.get_json()["error"]["details"]["field"] == "on_shelf"


def test_patch_product_sends_a_whole_new_coupon_rule_checked_as_at_creation(client, merchant, catalog, make_store):
    store = make_store(merchant.live)
    catalog.answers["UpdateProduct"] = product()
    rule = {"face_value": 2000, "threshold": 10000, "store_ids": [store["id"]], "redeem_methods": ["code"],
            "validity": {"mode": "relative", "days": 14}}
    assert client.patch("/v1/products/prd_1", headers=merchant.live, json={"coupon": rule}).status_code == 200
    sent = catalog.sent("UpdateProduct")
    assert sent.HasField("coupon") and not sent.HasField("price")
    assert (sent.coupon.face_value, sent.coupon.threshold, list(sent.coupon.store_ids), sent.coupon.validity.days) == (
        2000, 10000, [store["id"]], 14)
    unknown = client.patch("/v1/products/prd_1", headers=merchant.live,
                           json={"coupon": {**rule, "store_ids": ["sto_nope"]}})
    assert unknown.status_code == 422 and unknown.get_json()["error"]["code"] == "unknown_store"
    missing = client.patch("/v1/products/prd_1", headers=merchant.live, json={"coupon": {"face_value": 1}})
    assert missing.status_code == 422 and missing.get_json()["error"]["details"]["field"] == "coupon.redeem_methods"
    assert len([c for c in catalog.calls if c[0] == "UpdateProduct"]) == 1


def test_a_coupon_with_discount_rate_cap_and_usage_windows_is_sent_field_by_field(client, merchant, fake):
    body = {"kind": "coupon", "name": "8.5折", "category_id": "cat_1", "price": 100,
            "stock": {"mode": "unlimited"}, "purchase_limit": 2,
            "coupon": {"discount_rate": 8500, "max_discount": 2000, "redeem_methods": ["qr"],
                       "usage_windows": [{"weekdays": [1, 2, 3, 4, 5], "start_hour": 10, "end_hour": 14}],
                       "validity": {"mode": "relative", "days": 7}}}
    assert client.post("/v1/products", json=body, headers=merchant.live).status_code == 201
    sent = fake.calls_of("create_product")[0].request
    assert (sent.coupon.face_value, sent.coupon.discount_rate, sent.coupon.max_discount, sent.purchase_limit) == (
        0, 8500, 2000, 2)
    [window] = sent.coupon.usage_windows
    assert (list(window.weekdays), window.start_hour, window.end_hour) == ([1, 2, 3, 4, 5], 10, 14)


def test_stock_moves_are_listed_with_actor_reason_and_order(client, merchant, catalog):
    catalog.answers["ListStockMoves"] = catalog_pb2.ListStockMovesResponse(moves=[
        catalog_pb2.StockMove(id=2, product_id="prd_1", order_id="ord_1", delta=-1, reason="reserved",
                              actor="key_1")])
    body = client.get("/v1/products/prd_1/stock-moves", headers=merchant.live).get_json()
    assert body["data"][0] == {"id": 2, "delta": -1, "reason": "reserved", "actor": "key_1", "order_id": "ord_1",
                               "note": None, "created_at": None}
    assert body["next_cursor"] is None


def test_card_keys_load_from_json_and_report_refused_ones_masked(client, merchant, catalog):
    catalog.answers["LoadCardKeys"] = catalog_pb2.LoadCardKeysResponse(
        loaded=1, card_keys_available=8,
        refused=[catalog_pb2.RefusedCardKey(index=1, card_number_masked="6222****0001", reason="duplicate")])
    response = client.post("/v1/products/prd_1/card-keys", headers=merchant.live, json={"keys": [
        {"card_number": "62220000000000000", "password": "a"}, {"card_number": "62220000000000001"}]})
    assert response.get_json() == {"loaded": 1, "card_keys_available": 8, "refused": [
        {"index": 1, "card_number": "6222****0001", "reason": "duplicate"}]}
    sent = catalog.sent("LoadCardKeys")
    assert [(k.card_number, k.password) for k in sent.keys] == [("62220000000000000", "a"),
                                                                ("62220000000000001", "")]


def test_card_keys_load_from_a_csv_or_xlsx_upload(client, merchant, catalog):
    catalog.answers["LoadCardKeys"] = catalog_pb2.LoadCardKeysResponse(loaded=2)
    csv_file = b"card_number,password\nA001,p1\n\nA002,p2\n"
    client.post("/v1/products/prd_1/card-keys", headers=merchant.live,
                data={"file": (io.BytesIO(csv_file), "keys.csv")}, content_type="multipart/form-data")
    assert [(k.card_number, k.password) for k in catalog.sent("LoadCardKeys").keys] == [("A001", "p1"),
                                                                                        ("A002", "p2")]
    book = Workbook()
    book.active.append(["B001", "q1"])
    book.active.append([12345678, 999])
    out = io.BytesIO()
    book.save(out)
    out.seek(0)
    client.post("/v1/products/prd_1/card-keys", headers=merchant.live,
                data={"file": (out, "keys.xlsx")}, content_type="multipart/form-data")
    assert [(k.card_number, k.password) for k in catalog.sent("LoadCardKeys").keys] == [("B001", "q1"),
                                                                                        ("12345678", "999")]


def test_the_buyer_sees_the_orders_card_keys_and_what_is_pending(client, merchant, catalog):
    catalog.answers["ListDeliveries"] = catalog_pb2.ListDeliveriesResponse(
        card_keys=[catalog_pb2.DeliveredCardKey(product_id="prd_1", product_name="视频会员", unit_index=0,
                                                card_number="A001", password="p1")],
        pending=[catalog_pb2.PendingDelivery(product_id="prd_1", quantity=1)],
        top_ups=[catalog_pb2.TopUpDelivery(product_id="prd_2", product_name="话费", quantity=1, account="cus_1",
                                           status="delivered", supplier_reference="sim_1")])
    body = client.get("/v1/orders/ord_1/deliveries", headers=merchant.test).get_json()
    assert body == {"order_id": "ord_1", "card_keys": [
        {"product_id": "prd_1", "product_name": "视频会员", "unit_index": 0, "card_number": "A001",
         "password": "p1", "delivered_at": None}], "pending": [{"product_id": "prd_1", "quantity": 1}],
        "top_ups": [{"product_id": "prd_2", "product_name": "话费", "quantity": 1, "account": "cus_1",
                     "status": "delivered", "supplier_reference": "sim_1", "delivered_at": None}]}
    method, caller, request = catalog.calls[-1]
    assert (caller.merchant_id, caller.mode, request.order_id) == (merchant.id, "test", "ord_1")


def test_the_import_template_is_served_as_an_xlsx_attachment(client, merchant, catalog):
    catalog.answers["GetImportTemplate"] = catalog_pb2.FileContent(filename="t.xlsx", content_type=XLSX,
                                                                   content=b"PK..")
    response = client.get("/v1/products/import-template", headers=merchant.live)
    assert response.status_code == 200 and response.mimetype == XLSX and response.data == b"PK.."
    assert response.headers["Content-Disposition"] == 'attachment; filename="t.xlsx"'


def test_an_import_sends_the_callers_store_ids_and_answers_201(client, merchant, make_store, catalog):
    store = make_store(merchant.live)
    catalog.answers["ImportProducts"] = catalog_pb2.ImportProductsResponse(job_id="imp_1", created=2,
                                                                           product_ids=["prd_1", "prd_2"])
    response = client.post("/v1/products/import", headers=merchant.live,
                           data={"file": (io.BytesIO(b"PK.."), "p.xlsx")}, content_type="multipart/form-data")
    assert response.status_code == 201
    assert response.get_json() == {"job_id": "imp_1", "created": 2, "product_ids": ["prd_1", "prd_2"]}
    sent = catalog.sent("ImportProducts")
    assert sent.content == b"PK.." and list(sent.known_store_ids) == [store["id"]]


def test_a_rejected_import_is_422_with_every_bad_row_and_a_report_link(client, merchant, catalog):
    catalog.answers["ImportProducts"] = catalog_pb2.ImportProductsResponse(job_id="imp_2", rejected=True, errors=[
        catalog_pb2.ImportRowError(row=3, column="price", message="must be a whole number"),
        catalog_pb2.ImportRowError(row=7, column="valid_to", message="validity ends before it starts")])
    response = client.post("/v1/products/import", headers=merchant.live,
                           data={"file": (io.BytesIO(b"PK.."), "p.xlsx")}, content_type="multipart/form-data")
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "import_rejected"
    assert error["details"] == [{"row": 3, "column": "price", "message": "must be a whole number"},
                                {"row": 7, "column": "valid_to", "message": "validity ends before it starts"}]
    assert error["error_report"] == "/v1/products/import/imp_2/errors.xlsx"
    catalog.answers["GetImportErrors"] = catalog_pb2.FileContent(filename="e.xlsx", content_type=XLSX,
                                                                 content=b"PK!!")
    assert client.get(error["error_report"], headers=merchant.live).data == b"PK!!"
    assert catalog.sent("GetImportErrors").job_id == "imp_2"


def test_an_import_without_a_file_is_422(client, merchant, catalog):
    response = client.post("/v1/products/import", headers=merchant.live, data={},
                           content_type="multipart/form-data")
    assert response.status_code == 422 and response.get_json()["error"]["details"]["field"] == "file"


def test_new_routes_need_an_api_key(client, catalog):
    for method, path in (("get", "/v1/products"), ("patch", "/v1/products/prd_1"),
                         ("get", "/v1/orders/ord_1/deliveries"), ("post", "/v1/products/import")):
        assert getattr(client, method)(path).status_code == 401
    assert catalog.calls == []
