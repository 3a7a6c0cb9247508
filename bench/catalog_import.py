"""Catalog Excel import: 5,000 coupon rows from the .xlsx template imported in one transaction (parse, check
every row, bulk insert products, opening stock moves and product-changed events) on an embedded SQLite
database, beside the baseline of openpyxl alone reading the same workbook.

`bench()` returns rows of {name, ops, seconds}; run it alone with `python bench/catalog_import.py`.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROWS = 5_000


def _workbook(rows: int) -> bytes:
    from openpyxl import Workbook

    from weika_catalog.service_layer import imports

    book = Workbook()
    sheet = book.active
    sheet.title = imports.SHEET
    sheet.append(list(imports.COLUMN_NAMES))
    example = {"kind": "coupon", "category": "餐饮券", "price": 990, "stock_mode": "limited", "stock_quantity": 100,
               "face_value": 1000, "threshold": 5000, "redeem_methods": "qr,code", "validity_mode": "relative",
               "validity_days": 30}
    for i in range(rows):
        sheet.append([{**example, "name": f"满50减10 #{i}"}.get(name) for name in imports.COLUMN_NAMES])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def bench() -> list[dict]:
    from cryptography.fernet import Fernet
    from openpyxl import load_workbook

    from weika_catalog.bootstrap import MIGRATIONS
    from weika_catalog.service_layer import imports, services
    from weika_kit import migrations
    from weika_kit.context import Caller
    from weika_kit.db import Database

    os.environ.setdefault("WEIKA_SECRET_KEY", Fernet.generate_key().decode())
    content = _workbook(ROWS)
    started = time.perf_counter()
    book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    parsed = sum(1 for _ in book.worksheets[0].iter_rows(values_only=True)) - 1
    parse_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'catalog.sqlite3'}"
        migrations.upgrade(url, MIGRATIONS)
        db = Database(url, service="catalog")
        caller = Caller("mch_bench", "test", staff_id="bench", role="owner")
        services.create_category(db, caller, "餐饮券", "")
        started = time.perf_counter()
        _, created, errors = imports.import_products(db, caller, content, [])
        import_seconds = time.perf_counter() - started
        db.dispose()
    if errors or len(created) != ROWS:
        raise RuntimeError(f"import refused: {errors[:3]}")
    return [
        {"name": "baseline: openpyxl reads the .xlsx", "ops": parsed, "seconds": parse_seconds},
        {"name": "catalog import (checked, one transaction)", "ops": len(created), "seconds": import_seconds},
    ]


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    results = bench()
    baseline = results[0]["seconds"]
    for row in results:
        print(f"{row['name']:<45} {row['ops']:>6} rows {row['seconds']:7.2f} s "
              f"{row['ops'] / row['seconds']:9.0f} rows/s  x{row['seconds'] / baseline:.2f} of baseline")
