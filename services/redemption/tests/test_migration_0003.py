"""Migration 0003 on a database with coupons already redeemed under 0002: they keep no use left."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from weika_kit.context import Caller
from weika_kit.db import Database
from weika_kit.errors import DomainError
from weika_redemption.bootstrap import MIGRATIONS
from weika_redemption.service_layer import services


def migrate(url: str, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS)
    cfg.attributes["url"] = url
    command.upgrade(cfg, revision)


def test_coupons_redeemed_before_0003_stay_used_up_and_issued_ones_get_one_use(tmp_path, clock, make):
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    migrate(url, "0002")
    engine = create_engine(url)
    columns = ("merchant_id, mode, order_id, product_id, unit_index, category_id, customer_id, code_fingerprint, "
               "code_encrypted, status, face_value, threshold, store_ids, redeem_methods, valid_from, valid_until, "
               "issued_at")
    with engine.begin() as conn:
        for i, status in enumerate(("issued", "redeemed")):
            conn.execute(text(f"INSERT INTO coupons (id, {columns}) VALUES (:id, 'mch_tea', 'live', 'ord_old', "
                              f"'prd', {i}, 'cat', 'cus', :fp, 'x', :status, 100, 0, '[]', '[]', "
                              "'2026-06-01 00:00:00', '2026-12-01 00:00:00', '2026-06-01 00:00:00')"),
                         {"id": f"cpn_{status}", "fp": f"fp_{status}", "status": status})
    engine.dispose()

    migrate(url, "head")

    engine = create_engine(url)
    with engine.connect() as conn:
        uses = dict(conn.execute(text("SELECT id, uses_left FROM coupons")).all())
        windows = conn.execute(text("SELECT usage_windows, uses_total FROM coupons")).all()
    engine.dispose()
    assert uses == {"cpn_issued": 1, "cpn_redeemed": 0}
    assert {tuple(w) for w in windows} == {("[]", 1)}
    db = Database(url, service="redemption", clock=clock)
    try:
        page = services.list_redemptions(db, Caller("mch_tea", "live"), services.ListFilter())
        assert page.redemptions == []
        with pytest.raises(DomainError) as refused:
            services.reverse_redemption(db, Caller("mch_tea", "live"), "rdm_none", "x")
        assert refused.value.code == "redemption_not_found"
    finally:
        db.dispose()
