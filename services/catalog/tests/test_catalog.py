"""Catalog use cases: products and their coupon rules, stock that is never oversold, tenancy."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from weika_catalog.adapters import tables
from weika_catalog.domain import errors
from weika_catalog.domain.model import CouponRule, Validity
from weika_catalog.service_layer import services
from weika_kit.context import Caller
from weika_kit.db import KIT_TABLES

SHOP = Caller("mch_shop", "test", staff_id="key_1", role="owner")
RIVAL = Caller("mch_rival", "test", staff_id="key_2", role="owner")


def coupon_rule(**validity) -> CouponRule:
    return CouponRule(face_value=1000, threshold=5000, store_ids=("st_1",), redeem_methods=("qr", "code"),
                      validity=Validity(**(validity or {"mode": "relative", "days": 30})))


def new_coupon(db, caller=SHOP, quantity: int | None = 10, rule: CouponRule | None = None):  # type: ignore[no-untyped-def]
    category = services.create_category(db, caller, "餐饮券", "")
    return services.create_product(db, caller, services.NewProduct(
        kind="coupon", name="满50减10", description="", category_id=category["id"], price=990,
        stock_mode="limited" if quantity is not None else "unlimited", quantity=quantity or 0,
        coupon=rule or coupon_rule()))


def events(db, topic: str) -> list:  # type: ignore[no-untyped-def]
    outbox = KIT_TABLES["outbox"]
    with db.engine.connect() as conn:
        return list(conn.execute(select(outbox).where(outbox.c.topic == topic)))


def test_created_product_is_announced_as_product_changed(db):
    product = new_coupon(db)
    assert services.get_product(db, SHOP, product.id).coupon == coupon_rule()
    [row] = events(db, "weika.catalog.product-changed.v1")
    assert row.key == product.id


def test_fixed_validity_that_ends_before_it_starts_is_refused(db):
    rule = coupon_rule(mode="fixed", starts_at=datetime(2026, 7, 1, tzinfo=UTC), ends_at=datetime(2026, 6, 1, tzinfo=UTC))
    with pytest.raises(errors.ValidityEndsBeforeStart):
        new_coupon(db, rule=rule)


def test_face_value_above_threshold_is_refused(db):
    rule = CouponRule(face_value=6000, threshold=5000, store_ids=(), redeem_methods=("code",),
                      validity=Validity("relative", days=7))
    with pytest.raises(errors.FaceValueExceedsThreshold):
        new_coupon(db, rule=rule)


def test_reservation_is_idempotent_per_order_and_never_goes_negative(db):
    product = new_coupon(db, quantity=3)
    first = services.reserve_stock(db, SHOP, "ord_1", [(product.id, 2)])
    again = services.reserve_stock(db, SHOP, "ord_1", [(product.id, 2)])
    assert [(r.product.id, r.quantity) for r in first] == [(r.product.id, r.quantity) for r in again]
    assert services.get_product(db, SHOP, product.id).available == 1
    with pytest.raises(errors.OutOfStock) as refused:
        services.reserve_stock(db, SHOP, "ord_2", [(product.id, 2)])
    assert refused.value.details == {"product_id": product.id, "available": 1, "requested": 2}
    assert services.get_product(db, SHOP, product.id).available == 1


def test_released_stock_comes_back_once(db):
    product = new_coupon(db, quantity=3)
    services.reserve_stock(db, SHOP, "ord_1", [(product.id, 3)])
    for _ in range(2):
        with db.unit_of_work() as uow:
            services.release_stock(uow, SHOP, "ord_1", "order-cancelled")
            uow.commit()
    assert services.get_product(db, SHOP, product.id).available == 3
    assert [e.key for e in events(db, "weika.catalog.stock-changed.v1")] == [product.id, product.id]


def test_paid_reservation_is_consumed_and_cannot_be_released(db):
    product = new_coupon(db, quantity=3)
    services.reserve_stock(db, SHOP, "ord_1", [(product.id, 2)])
    with db.unit_of_work() as uow:
        services.consume_stock(uow, SHOP, "ord_1")
        services.release_stock(uow, SHOP, "ord_1", "too late")
        uow.commit()
    after = services.get_product(db, SHOP, product.id)
    assert (after.available, after.reserved) == (1, 0)


def test_another_merchant_can_neither_see_nor_reserve_a_product(db):
    product = new_coupon(db)
    with pytest.raises(errors.ProductNotFound):
        services.get_product(db, RIVAL, product.id)
    with pytest.raises(errors.ProductNotFound):
        services.reserve_stock(db, RIVAL, "ord_x", [(product.id, 1)])
    live = type(SHOP)(SHOP.merchant_id, "live")
    with pytest.raises(errors.ProductNotFound):
        services.get_product(db, live, product.id)


def _race(db, product_id: str, buyers: int) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    sold, refused = [], []
    barrier = threading.Barrier(buyers)

    def buy(i: int) -> None:
        barrier.wait()
        try:
            services.reserve_stock(db, SHOP, f"ord_{i}", [(product_id, 1)])
            sold.append(i)
        except errors.OutOfStock:
            refused.append(i)

    threads = [threading.Thread(target=buy, args=(i,)) for i in range(buyers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(sold), len(refused)


def test_200_concurrent_buyers_of_50_units_on_sqlite_get_exactly_50(db):
    product = new_coupon(db, quantity=50)
    assert _race(db, product.id, 200) == (50, 150)
    assert services.get_product(db, SHOP, product.id).available == 0


@pytest.mark.postgres
def test_200_concurrent_buyers_of_50_units_on_postgres_get_exactly_50(fresh_postgres_database, make_db):
    db = make_db(fresh_postgres_database("catalog"))
    product = new_coupon(db, quantity=50)
    assert _race(db, product.id, 200) == (50, 150)
    assert services.get_product(db, SHOP, product.id).available == 0
    with db.engine.connect() as conn:
        moves = conn.execute(select(tables.stock_moves).where(tables.stock_moves.c.reason == "reserved")).all()
    assert len(moves) == 50


def test_a_multi_use_coupon_keeps_its_number_of_uses_and_refuses_nonsense(db):
    from dataclasses import replace

    product = new_coupon(db, rule=replace(coupon_rule(), max_uses=10))
    assert services.get_product(db, SHOP, product.id).coupon.max_uses == 10
    for wrong in (0, 101):
        with pytest.raises(errors.InvalidProduct) as refused:
            new_coupon(db, rule=replace(coupon_rule(), max_uses=wrong))
        assert refused.value.details == {"field": "coupon.max_uses"}
