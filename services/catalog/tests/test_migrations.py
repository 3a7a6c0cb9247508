"""Revision 0002 upgrades a catalog database that already holds data (databases exist: 0001 is never edited)."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from weika_catalog.bootstrap import MIGRATIONS
from weika_kit import migrations


def _config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS)
    cfg.attributes["url"] = url
    return cfg


def test_0002_keeps_existing_rows_and_gives_old_stock_moves_their_products_mode(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    command.upgrade(_config(url), "0001")
    now = datetime(2026, 6, 1, tzinfo=UTC).isoformat()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO categories (id, merchant_id, mode, name, created_at) "
                          "VALUES ('cat_1', 'mch_1', 'test', '券', :now)"), {"now": now})
        conn.execute(text(
            "INSERT INTO products (id, merchant_id, mode, kind, name, description, category_id, price, on_shelf, "
            "stock_mode, stock_available, stock_reserved, created_at, updated_at) VALUES ('prd_1', 'mch_1', 'test', "
            "'physical', '杯', '', 'cat_1', 100, 1, 'limited', 5, 0, :now, :now)"), {"now": now})
        conn.execute(text("INSERT INTO stock_moves (product_id, merchant_id, delta, reason, actor, created_at) "
                          "VALUES ('prd_1', 'mch_1', -1, 'reserved', 'key_1', :now)"), {"now": now})
    migrations.upgrade(url, MIGRATIONS)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT mode, note FROM stock_moves")).one() == ("test", "")
        assert conn.execute(text("SELECT position FROM categories")).scalar_one() == 0
        assert conn.execute(text("SELECT purchase_limit, details FROM products")).one() == (0, None)
    engine.dispose()


def test_0005_gives_existing_deliveries_nothing_withdrawn(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    command.upgrade(_config(url), "0004")
    now = datetime(2026, 6, 1, tzinfo=UTC).isoformat()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO categories (id, merchant_id, mode, name, created_at) "
                          "VALUES ('cat_1', 'mch_1', 'test', '卡', :now)"), {"now": now})
        conn.execute(text(
            "INSERT INTO products (id, merchant_id, mode, kind, name, description, category_id, price, on_shelf, "
            "stock_mode, stock_available, stock_reserved, created_at, updated_at) VALUES ('prd_1', 'mch_1', 'test', "
            "'virtual', '卡', '', 'cat_1', 100, 1, 'limited', 5, 0, :now, :now)"), {"now": now})
        conn.execute(text(
            "INSERT INTO deliveries (order_id, product_id, merchant_id, mode, quantity, delivered, status, "
            "created_at, updated_at) VALUES ('ord_1', 'prd_1', 'mch_1', 'test', 2, 1, 'pending', :now, :now)"),
            {"now": now})
    migrations.upgrade(url, MIGRATIONS)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT quantity, delivered, withdrawn FROM deliveries")).one() == (2, 1, 0)
        assert conn.execute(text("SELECT count(*) FROM delivery_withdrawals")).scalar_one() == 0
    engine.dispose()


def test_0006_leaves_existing_withdrawals_not_restored(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    command.upgrade(_config(url), "0005")
    now = datetime(2026, 6, 1, tzinfo=UTC).isoformat()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO delivery_withdrawals (refund_id, product_id, order_id, merchant_id, mode, quantity, "
            "created_at) VALUES ('rfd_1', 'prd_1', 'ord_1', 'mch_1', 'test', 2, :now)"), {"now": now})
    migrations.upgrade(url, MIGRATIONS)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT quantity, restored_at FROM delivery_withdrawals")).one() == (2, None)
    engine.dispose()
