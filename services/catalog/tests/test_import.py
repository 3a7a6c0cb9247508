"""Excel import: the template, all rows or none, every bad row reported, an error report, and speed."""

from __future__ import annotations

import io
import time

import pytest
from openpyxl import Workbook, load_workbook

from weika_catalog.service_layer import imports, services
from weika_kit.errors import InvalidArgument


def workbook(rows: list[dict], header: tuple[str, ...] = imports.COLUMN_NAMES) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = imports.SHEET
    sheet.append(list(header))
    for row in rows:
        sheet.append([row.get(name) for name in header])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def coupon_row(**changes) -> dict:  # type: ignore[no-untyped-def]
    return {"kind": "coupon", "name": "满50减10", "category": "餐饮券", "price": 990, "stock_mode": "limited",
            "stock_quantity": 100, "face_value": 1000, "threshold": 5000, "redeem_methods": "qr,code",
            "validity_mode": "relative", "validity_days": 30, **changes}


def test_the_template_has_the_headers_an_example_and_dropdowns_for_enumerations():
    book = load_workbook(io.BytesIO(imports.template()))
    sheet = book[imports.SHEET]
    assert [c.value for c in sheet[1]] == list(imports.COLUMN_NAMES)
    assert sheet["A2"].value == "coupon"
    dropdowns = {str(v.sqref).split(":")[0]: v.formula1 for v in sheet.data_validations.dataValidation}
    assert dropdowns["A2"] == '"coupon,virtual,physical"'
    assert dropdowns["F2"] == '"limited,unlimited"'
    assert '"fixed,relative"' in dropdowns.values()


def test_the_filled_in_template_example_imports(db, make):
    make.category(db, name="餐饮券")
    job_id, created, found = imports.import_products(db, make.shop, imports.template(), [])
    assert found == [] and len(created) == 1
    assert services.get_product(db, make.shop, created[0]).coupon.face_value == 1000


def test_every_row_is_created_with_its_kind_fields_and_opening_stock(db, make):
    cat = make.category(db, name="餐饮券")
    rows = [coupon_row(store_ids="st_1"),
            {"kind": "virtual", "name": "视频会员", "category": cat, "price": 1990, "stock_mode": "limited",
             "stock_quantity": 0, "virtual_delivery": "card_key", "low_stock_threshold": 5},
            {"kind": "physical", "name": "茶杯", "category": "餐饮券", "price": 1500, "stock_mode": "unlimited",
             "weight_grams": 300, "spec": "350ml", "on_shelf": "no"}]
    _, created, found = imports.import_products(db, make.shop, workbook(rows), ["st_1"])
    assert found == []
    products = [services.get_product(db, make.shop, pid) for pid in created]
    assert [p.kind for p in products] == ["coupon", "virtual", "physical"]
    assert products[0].coupon.store_ids == ("st_1",) and products[0].available == 100
    assert products[1].virtual.low_stock_threshold == 5
    assert (products[2].physical.weight_grams, products[2].on_shelf) == (300, False)
    assert services.list_stock_moves(db, make.shop, products[0].id)[0][0].reason == "created"
    assert len(make.outbox(db, "weika.catalog.product-changed.v1")) == 3


def test_any_bad_row_rejects_the_import_and_every_bad_row_is_reported(db, make):
    make.category(db, name="餐饮券")
    rows = [coupon_row(),
            coupon_row(price="abc"),
            coupon_row(face_value=6000),
            coupon_row(category="不存在", store_ids="st_other"),
            coupon_row(validity_mode="fixed", valid_from="2026-07-01", valid_to="2026-06-01"),
            coupon_row(kind="virtual", face_value=None)]
    job_id, created, found = imports.import_products(db, make.shop, workbook(rows), ["st_1"])
    assert created == []
    assert [(e["row"], e["column"]) for e in found] == [
        (3, "price"), (4, "face_value"), (5, "category"), (5, "store_ids"), (6, "valid_to"), (7, "virtual_delivery")]
    assert services.list_products(db, make.shop, services.ProductFilter())[0] == []
    report = load_workbook(io.BytesIO(imports.error_report(db, make.shop, job_id))).active
    assert [[c.value for c in row] for row in report.iter_rows(max_row=2)] == [
        ["row", "column", "message"], [3, "price", "must be a whole number, not 'abc'"]]


def test_unknown_or_missing_columns_are_reported_against_the_header(db, make):
    _, created, found = imports.import_products(db, make.shop, workbook([coupon_row()], ("kind", "name", "colour")), [])
    assert created == []
    assert {(e["row"], e["column"]) for e in found} == {
        (1, "colour"), (1, "category"), (1, "price"), (1, "stock_mode")}


def test_a_file_that_is_not_a_workbook_is_refused(db, make):
    with pytest.raises(InvalidArgument) as refused:
        imports.import_products(db, make.shop, b"name,price\n", [])
    assert refused.value.code == "invalid_import_file"


def test_another_merchant_cannot_read_an_error_report(db, make):
    job_id, _, _ = imports.import_products(db, make.shop, workbook([coupon_row(price="x")]), [])
    imports.error_report(db, make.shop, job_id)
    with pytest.raises(Exception) as refused:
        imports.error_report(db, make.rival, job_id)
    assert getattr(refused.value, "code", "") == "import_job_not_found"


def test_2000_rows_import_in_one_transaction_within_seconds(db, make):
    make.category(db, name="餐饮券")
    content = workbook([coupon_row(name=f"券 {i}") for i in range(2000)])
    started = time.perf_counter()
    _, created, found = imports.import_products(db, make.shop, content, [])
    elapsed = time.perf_counter() - started
    assert found == [] and len(created) == 2000
    assert elapsed < 8, f"2000 rows took {elapsed:.1f}s"


def test_usage_windows_are_read_from_their_column_and_a_bad_one_is_reported(db, make):
    make.category(db, name="餐饮券")
    rows = [coupon_row(usage_windows="1-5 10-14; 6,7"), coupon_row(usage_windows="weekends"),
            coupon_row(usage_windows="1-5 14-10")]
    _, created, found = imports.import_products(db, make.shop, workbook(rows), [])
    assert [(e["row"], e["column"]) for e in found] == [(3, "usage_windows"), (4, "usage_windows")]
    _, created, found = imports.import_products(db, make.shop, workbook(rows[:1]), [])
    windows = services.get_product(db, make.shop, created[0]).coupon.usage_windows
    assert [(w.weekdays, w.start_hour, w.end_hour) for w in windows] == [((1, 2, 3, 4, 5), 10, 14), ((6, 7), 0, 24)]
