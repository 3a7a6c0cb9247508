"""Bulk import of products from the .xlsx template: every row or none, with a row-by-row error report.

Every row is checked (all errors of all rows, not just the first) before anything is written; then one
transaction inserts all products, their opening stock moves and their product-changed events in bulk.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from weika_catalog import metrics
from weika_catalog.adapters import tables as t
from weika_catalog.adapters.outbox import add_events
from weika_catalog.adapters.repository import CatalogRepository
from weika_catalog.domain import errors
from weika_catalog.domain.model import (
    DELIVERY_MODES,
    KINDS,
    REDEEM_METHODS,
    STOCK_MODES,
    VALIDITY_MODES,
    CouponRule,
    PhysicalSpec,
    Product,
    UsageWindow,
    Validity,
    VirtualSpec,
)
from weika_catalog.service_layer.services import _actor, _product_changed
from weika_kit import ids
from weika_kit.context import Caller
from weika_kit.db import Database
from weika_kit.errors import DomainError, InvalidArgument

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
TEMPLATE_FILENAME = "weika-products-template.xlsx"
SHEET = "products"
MAX_ROWS = 10_000


@dataclass(frozen=True)
class Column:
    name: str
    help: str
    example: Any
    choices: tuple[str, ...] = ()


COLUMNS = (
    Column("kind", "coupon | virtual | physical", "coupon", KINDS),
    Column("name", "1 to 200 characters", "满50减10 代金券"),
    Column("description", "optional", "全场通用"),
    Column("category", "a category id or its exact name", "餐饮券"),
    Column("price", "unit price in fen (990 = 9.90 yuan)", 990),
    Column("stock_mode", "limited | unlimited", "limited", STOCK_MODES),
    Column("stock_quantity", "units for limited stock", 100),
    Column("purchase_limit", "most units per customer; empty or 0 = no limit", 2),
    Column("on_shelf", "yes | no (default yes)", "yes", ("yes", "no")),
    Column("face_value", "coupon: discount in fen (满减); or use discount_rate", 1000),
    Column("discount_rate", "coupon: basis points paid, 8500 = 8.5折", None),
    Column("max_discount", "coupon with discount_rate: cap in fen", None),
    Column("threshold", "coupon: minimum order in fen (满X元可用); 0 = none", 5000),
    Column("store_ids", "coupon: store ids separated by commas; empty = every store", None),
    Column("redeem_methods", "coupon: qr, code or qr,code", "qr,code"),
    Column("usage_windows", "coupon: when it may be used, e.g. 1-5 10-14; 6,7 (weekdays 1=Mon..7=Sun, hours)",
           None),
    Column("validity_mode", "coupon: fixed | relative", "relative", VALIDITY_MODES),
    Column("validity_days", "coupon, relative: valid N days", 30),
    Column("starts_after_days", "coupon, relative: starts M days after issue", 0),
    Column("valid_from", "coupon, fixed: date (UTC)", None),
    Column("valid_to", "coupon, fixed: date (UTC)", None),
    Column("virtual_delivery", "virtual: card_key | top_up", None, DELIVERY_MODES),
    Column("low_stock_threshold", "virtual: warn below this many card keys", None),
    Column("supplier_sku", "virtual top_up: the supplier's product code", None),
    Column("weight_grams", "physical: weight in grams", None),
    Column("spec", "physical: e.g. 500ml / bottle", None),
)
COLUMN_NAMES = tuple(c.name for c in COLUMNS)
REQUIRED = ("kind", "name", "category", "price", "stock_mode")
# Which template column a domain error's field belongs to.
FIELD_COLUMNS = {
    "kind": "kind", "name": "name", "price": "price", "stock.mode": "stock_mode", "stock.quantity": "stock_quantity",
    "purchase_limit": "purchase_limit", "coupon": "face_value", "coupon.face_value": "face_value",
    "coupon.discount_rate": "discount_rate", "coupon.max_discount": "max_discount",
    "coupon.threshold": "threshold", "coupon.redeem_methods": "redeem_methods",
    "coupon.validity": "validity_mode", "coupon.validity.mode": "validity_mode",
    "coupon.validity.days": "validity_days", "coupon.validity.starts_after_days": "starts_after_days",
    "coupon.usage_windows": "usage_windows", "coupon.usage_windows.weekdays": "usage_windows",
    "virtual": "virtual_delivery", "virtual.delivery": "virtual_delivery",
    "virtual.low_stock_threshold": "low_stock_threshold", "virtual.supplier_sku": "supplier_sku",
    "physical": "weight_grams", "physical.weight_grams": "weight_grams", "physical.spec": "spec",
}
ERROR_COLUMNS = {errors.ValidityEndsBeforeStart.code: "valid_to",
                 errors.FaceValueExceedsThreshold.code: "face_value",
                 errors.DiscountRateOutOfRange.code: "discount_rate"}


def template() -> bytes:
    """Headers (with a comment line of help), one example row, dropdowns for the enumerated columns."""
    book = Workbook()
    sheet = book.active
    sheet.title = SHEET
    sheet.append(list(COLUMN_NAMES))
    sheet.append([c.example for c in COLUMNS])
    bold = Font(bold=True)
    fill = PatternFill("solid", fgColor="FFF2CC")
    for index, column in enumerate(COLUMNS, start=1):
        cell = sheet.cell(row=1, column=index)
        cell.font, cell.fill = bold, fill
        letter = get_column_letter(index)
        sheet.column_dimensions[letter].width = max(14, len(column.name) + 4)
        if column.choices:
            validation = DataValidation(type="list", formula1=f'"{",".join(column.choices)}"', allow_blank=True,
                                        showErrorMessage=True, error=f"one of {', '.join(column.choices)}")
            validation.add(f"{letter}2:{letter}{MAX_ROWS + 1}")
            sheet.add_data_validation(validation)
    sheet.freeze_panes = "A2"
    help_sheet = book.create_sheet("help")
    help_sheet.append(["column", "meaning", "required"])
    for column in COLUMNS:
        help_sheet.append([column.name, column.help, "yes" if column.name in REQUIRED else ""])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


class _RowErrors(Exception):
    def __init__(self, found: list[dict[str, Any]]):
        self.found = found


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


class _Row:
    """One spreadsheet row read by column name; every bad cell is noted, none stops the others."""

    def __init__(self, number: int, values: dict[str, Any]):
        self.number = number
        self.values = values
        self.errors: list[dict[str, Any]] = []

    def error(self, column: str, message: str) -> None:
        self.errors.append({"row": self.number, "column": column, "message": message})

    def text(self, column: str) -> str:
        return _text(self.values.get(column))

    def integer(self, column: str, default: int = 0) -> int:
        raw = self.values.get(column)
        if raw is None or _text(raw) == "":
            return default
        if isinstance(raw, bool):
            self.error(column, "must be a whole number")
            return default
        try:
            number = float(raw) if isinstance(raw, (int, float)) else float(_text(raw))
        except ValueError:
            self.error(column, f"must be a whole number, not {_text(raw)!r}")
            return default
        if not number.is_integer() or number < 0:
            self.error(column, f"must be a whole number of 0 or more, not {_text(raw)}")
            return default
        return int(number)

    def day(self, column: str) -> datetime | None:
        raw = self.values.get(column)
        if raw is None or _text(raw) == "":
            return None
        if isinstance(raw, datetime):
            return raw if raw.tzinfo else raw.replace(tzinfo=UTC)
        if isinstance(raw, date):
            return datetime(raw.year, raw.month, raw.day, tzinfo=UTC)
        try:
            parsed = datetime.fromisoformat(_text(raw))
        except ValueError:
            self.error(column, f"must be a date such as 2026-06-18, not {_text(raw)!r}")
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _read_rows(content: bytes) -> list[_Row]:
    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds for a file that is not an .xlsx
        raise InvalidArgument("the upload is not an .xlsx workbook; start from GET /v1/products/import-template",
                              code="invalid_import_file") from None
    sheet = book[SHEET] if SHEET in book.sheetnames else book.worksheets[0]
    rows = sheet.iter_rows(values_only=True)
    header = [_text(v) for v in next(rows, ())]
    unknown = [h for h in header if h and h not in COLUMN_NAMES]
    missing = [c for c in REQUIRED if c not in header]
    if unknown or missing:
        found = [{"row": 1, "column": c, "message": "unknown column"} for c in unknown]
        found += [{"row": 1, "column": c, "message": "required column is missing"} for c in missing]
        raise _RowErrors(found)
    read = []
    for number, values in enumerate(rows, start=2):
        if all(_text(v) == "" for v in values):
            continue
        if len(read) == MAX_ROWS:
            raise InvalidArgument(f"at most {MAX_ROWS} rows per import", code="too_many_rows",
                                  details={"maximum": MAX_ROWS})
        read.append(_Row(number, {name: value for name, value in zip(header, values, strict=False) if name}))
    book.close()
    return read


def _coupon(row: _Row, known_stores: set[str] | None) -> CouponRule:
    store_ids = tuple(s.strip() for s in row.text("store_ids").split(",") if s.strip())
    if known_stores is not None:
        for store_id in store_ids:
            if store_id not in known_stores:
                row.error("store_ids", f"store {store_id} is not one of your stores (unknown_store)")
    methods = tuple(m.strip() for m in row.text("redeem_methods").split(",") if m.strip()) or REDEEM_METHODS
    mode = row.text("validity_mode") or "relative"
    validity = Validity(mode=mode, days=row.integer("validity_days"),
                        starts_after_days=row.integer("starts_after_days"),
                        starts_at=row.day("valid_from"), ends_at=row.day("valid_to"))
    return CouponRule(face_value=row.integer("face_value"), threshold=row.integer("threshold"),
                      store_ids=store_ids, redeem_methods=methods, validity=validity,
                      discount_rate=row.integer("discount_rate"), max_discount=row.integer("max_discount"),
                      usage_windows=_usage_windows(row))


def _numbers(text: str) -> list[int]:
    """ "1-5" → [1..5], "1,3,6-7" → [1, 3, 6, 7]; ValueError when it is neither."""
    found: list[int] = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        found.extend(range(int(low), int(high or low) + 1))
    return found


def _usage_windows(row: _Row) -> tuple[UsageWindow, ...]:
    """ "1-5 10-14; 6,7" → Monday to Friday 10:00-14:00, and all of Saturday and Sunday."""
    windows = []
    for part in filter(None, (p.strip() for p in row.text("usage_windows").split(";"))):
        days, _, hours = part.partition(" ")
        try:
            start, _, end = hours.strip().partition("-")
            windows.append(UsageWindow(tuple(_numbers(days)), int(start or 0), int(end or 24)))
        except ValueError:
            row.error("usage_windows", f"{part!r} is not like 1-5 10-14 (weekdays 1=Mon..7=Sun, then hours)")
    return tuple(windows)


def _product(row: _Row, caller: Caller, now: datetime, categories: dict[str, str],
             known_stores: set[str] | None) -> Product | None:
    kind = row.text("kind")
    category = row.text("category")
    category_id = categories.get(category, "")
    if not category:
        row.error("category", "is required")
    elif not category_id:
        row.error("category", f"no category has the id or name {category!r} (or the name is not unique)")
    stock_mode = row.text("stock_mode")
    shelf = row.text("on_shelf").lower() or "yes"
    if shelf not in ("yes", "no"):
        row.error("on_shelf", "must be yes or no")
    delivery = row.text("virtual_delivery")
    product = Product(
        id=ids.new_id("prd"), merchant_id=caller.merchant_id, mode=caller.mode, kind=kind, name=row.text("name"),
        description=row.text("description"), category_id=category_id, price=row.integer("price"),
        on_shelf=shelf != "no", stock_mode=stock_mode,
        available=row.integer("stock_quantity") if stock_mode == "limited" else None, reserved=0,
        coupon=_coupon(row, known_stores) if kind == "coupon" else None, created_at=now, updated_at=now,
        virtual=VirtualSpec(delivery, row.integer("low_stock_threshold"), row.text("supplier_sku"))
        if kind == "virtual" else None,
        physical=PhysicalSpec(row.integer("weight_grams"), row.text("spec")) if kind == "physical" else None,
        purchase_limit=row.integer("purchase_limit"))
    if row.errors:
        return None  # a cell could not be read: the domain checks would only repeat it
    try:
        product.validate()
    except DomainError as refused:
        field = str(refused.details.get("field", ""))
        row.error(ERROR_COLUMNS.get(refused.code) or FIELD_COLUMNS.get(field, field), refused.message)
        return None
    return product


def _category_lookup(repo: CatalogRepository) -> dict[str, str]:
    """Id → id and unique name → id (a name two categories share is ambiguous, so it is left out)."""
    lookup: dict[str, str] = {}
    names: dict[str, list[str]] = {}
    for row in repo.list_categories():
        lookup[row.id] = row.id
        names.setdefault(row.name, []).append(row.id)
    for name, found in names.items():
        if len(found) == 1:
            lookup.setdefault(name, found[0])
    return lookup


def import_products(db: Database, caller: Caller, content: bytes,
                    known_store_ids: list[str] | None = None) -> tuple[str, list[str], list[dict[str, Any]]]:
    """(job id, created product ids, row errors): all rows created and no errors, or none and every error."""
    job_id = ids.new_id("imp")
    known = set(known_store_ids) if known_store_ids is not None else None
    try:
        rows = _read_rows(content)
    except _RowErrors as bad:
        return job_id, [], _reject(db, caller, job_id, 0, bad.found)
    if not rows:
        raise InvalidArgument("the workbook has no product rows", code="empty_import")
    with db.unit_of_work() as uow:
        repo = CatalogRepository(uow, caller)
        now = uow.now()
        categories = _category_lookup(repo)
        products = [_product(row, caller, now, categories, known) for row in rows]
        found = [e for row in rows for e in row.errors]
        if found:
            uow.rollback()
        else:
            valid = [p for p in products if p is not None]
            repo.add_products(valid)
            moves = [{"product_id": p.id, "merchant_id": caller.merchant_id, "mode": caller.mode, "order_id": None,
                      "delta": p.available, "reason": "created", "actor": _actor(caller)[:60],
                      "note": f"import {job_id}", "created_at": now} for p in valid if p.available]
            if moves:
                uow.execute(t.stock_moves.insert(), moves)
            add_events(uow, [_product_changed(product, "created") for product in valid])
            repo.add_import_job(job_id, "imported", len(valid), None)
            uow.commit()
            metrics.PRODUCT_IMPORTS.labels("imported").inc()
            return job_id, [p.id for p in valid], []
    return job_id, [], _reject(db, caller, job_id, len(rows), found)


def _reject(db: Database, caller: Caller, job_id: str, rows: int, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with db.unit_of_work() as uow:
        CatalogRepository(uow, caller).add_import_job(job_id, "rejected", rows, found)
        uow.commit()
    metrics.PRODUCT_IMPORTS.labels("rejected").inc()
    return found


def error_report(db: Database, caller: Caller, job_id: str) -> bytes:
    """The refused import's errors as an .xlsx: row, column, message, one line each."""
    with db.unit_of_work() as uow:
        job = CatalogRepository(uow, caller).get_import_job(job_id)
    if job is None or job.errors is None:
        raise errors.ImportJobNotFound(f"no refused import {job_id}", details={"job_id": job_id})
    book = Workbook()
    sheet = book.active
    sheet.title = "errors"
    sheet.append(["row", "column", "message"])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for error in json.loads(job.errors):
        sheet.append([error["row"], error["column"], error["message"]])
    sheet.column_dimensions["C"].width = 80
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
