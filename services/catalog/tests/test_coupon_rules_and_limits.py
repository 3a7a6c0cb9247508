"""Coupon rules (满减 or 折扣 with a cap, usage windows) and the per-customer purchase limit."""

from __future__ import annotations

import threading

import pytest

from weika_catalog.domain import errors
from weika_catalog.domain.model import UsageWindow
from weika_catalog.service_layer import services
from weika_kit.errors import InvalidArgument


def test_a_discount_rate_coupon_with_cap_and_usage_windows_is_kept_as_given(db, make):
    rule = make.coupon_rule(face_value=0, discount_rate=8500, max_discount=2000,
                            usage_windows=(UsageWindow((1, 2, 3, 4, 5), 10, 14), UsageWindow((6, 7))))
    product = make.product(db, kind="coupon", coupon=rule)
    assert services.get_product(db, make.shop, product.id).coupon == rule


@pytest.mark.parametrize("rate", [-1, 10_000, 12_000])
def test_a_discount_rate_outside_1_to_9999_basis_points_is_refused(db, make, rate):
    with pytest.raises(errors.DiscountRateOutOfRange):
        make.product(db, kind="coupon", coupon=make.coupon_rule(face_value=0, discount_rate=rate))


def test_face_value_and_discount_rate_together_or_a_cap_without_rate_are_refused(db, make):
    with pytest.raises(errors.InvalidProduct) as both:
        make.product(db, kind="coupon", coupon=make.coupon_rule(discount_rate=8000))
    assert both.value.details == {"field": "coupon.discount_rate"}
    with pytest.raises(errors.InvalidProduct) as cap:
        make.product(db, kind="coupon", coupon=make.coupon_rule(max_discount=500))
    assert cap.value.details == {"field": "coupon.max_discount"}


def test_face_value_above_the_threshold_makes_no_sense_but_a_discount_rate_with_threshold_does(db, make):
    with pytest.raises(errors.FaceValueExceedsThreshold):
        make.product(db, kind="coupon", coupon=make.coupon_rule(face_value=6000, threshold=5000))
    make.product(db, kind="coupon", coupon=make.coupon_rule(face_value=0, discount_rate=9000, threshold=100))


@pytest.mark.parametrize("window", [UsageWindow(()), UsageWindow((0,)), UsageWindow((8,)), UsageWindow((1, 1)),
                                    UsageWindow((1,), 14, 10), UsageWindow((1,), 0, 25)])
def test_a_usage_window_that_cannot_happen_is_refused(db, make, window):
    with pytest.raises(errors.InvalidUsageWindow):
        make.product(db, kind="coupon", coupon=make.coupon_rule(usage_windows=(window,)))


def test_a_customer_cannot_buy_more_than_the_limit_over_several_orders(db, make):
    product = make.product(db, quantity=100, purchase_limit=3)
    services.reserve_stock(db, make.shop, "ord_1", [(product.id, 2)], customer_id="cus_a")
    with pytest.raises(errors.PurchaseLimitExceeded) as refused:
        services.reserve_stock(db, make.shop, "ord_2", [(product.id, 2)], customer_id="cus_a")
    assert refused.value.details == {"product_id": product.id, "purchase_limit": 3, "already_bought": 2,
                                     "requested": 2}
    services.reserve_stock(db, make.shop, "ord_3", [(product.id, 1)], customer_id="cus_a")
    services.reserve_stock(db, make.shop, "ord_4", [(product.id, 3)], customer_id="cus_b")
    assert services.get_product(db, make.shop, product.id).available == 94


def test_a_refused_line_takes_nothing_from_the_other_lines(db, make):
    limited = make.product(db, quantity=100, purchase_limit=1)
    plain = make.product(db, quantity=5)
    with pytest.raises(errors.PurchaseLimitExceeded):
        services.reserve_stock(db, make.shop, "ord_1", [(plain.id, 2), (limited.id, 2)], customer_id="cus_a")
    assert services.get_product(db, make.shop, plain.id).available == 5
    services.reserve_stock(db, make.shop, "ord_2", [(limited.id, 1)], customer_id="cus_a")


def test_a_cancelled_order_gives_the_customer_their_allowance_back(db, make):
    product = make.product(db, quantity=100, purchase_limit=2)
    services.reserve_stock(db, make.shop, "ord_1", [(product.id, 2)], customer_id="cus_a")
    with db.unit_of_work() as uow:
        services.release_stock(uow, make.shop, "ord_1", "order-cancelled")
        uow.commit()
    services.reserve_stock(db, make.shop, "ord_2", [(product.id, 2)], customer_id="cus_a")


def test_a_limited_product_needs_the_customer_and_a_retried_reservation_counts_once(db, make):
    product = make.product(db, quantity=100, purchase_limit=2)
    with pytest.raises(InvalidArgument) as refused:
        services.reserve_stock(db, make.shop, "ord_1", [(product.id, 1)])
    assert refused.value.code == "customer_required"
    for _ in range(3):
        services.reserve_stock(db, make.shop, "ord_2", [(product.id, 2)], customer_id="cus_a")
    with pytest.raises(errors.PurchaseLimitExceeded):
        services.reserve_stock(db, make.shop, "ord_3", [(product.id, 1)], customer_id="cus_a")


def _same_customer_race(db, make, product_id: str, orders: int) -> int:  # type: ignore[no-untyped-def]
    sold: list[str] = []
    barrier = threading.Barrier(orders)

    def buy(i: int) -> None:
        barrier.wait()
        try:
            services.reserve_stock(db, make.shop, f"ord_{i}", [(product_id, 1)], customer_id="cus_a")
            sold.append(f"ord_{i}")
        except errors.PurchaseLimitExceeded:
            pass

    threads = [threading.Thread(target=buy, args=(i,)) for i in range(orders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(sold)


def test_one_customers_concurrent_orders_on_sqlite_stop_at_the_limit(db, make):
    product = make.product(db, quantity=100, purchase_limit=3)
    assert _same_customer_race(db, make, product.id, 20) == 3


@pytest.mark.postgres
def test_one_customers_concurrent_orders_on_postgres_stop_at_the_limit(fresh_postgres_database, make_db, make):
    db = make_db(fresh_postgres_database("catalog_limit"))
    product = make.product(db, quantity=100, purchase_limit=3)
    assert _same_customer_race(db, make, product.id, 20) == 3
    assert services.get_product(db, make.shop, product.id).available == 97


def test_refused_reservations_are_counted_by_reason(db, make):
    from prometheus_client import REGISTRY

    def counted(outcome: str) -> float:
        return REGISTRY.get_sample_value("weika_stock_reservations_total", {"outcome": outcome}) or 0.0

    product = make.product(db, quantity=1, purchase_limit=5)
    before = {o: counted(o) for o in ("reserved", "out_of_stock", "purchase_limit_exceeded")}
    services.reserve_stock(db, make.shop, "ord_1", [(product.id, 1)], customer_id="cus_a")
    with pytest.raises(errors.OutOfStock):
        services.reserve_stock(db, make.shop, "ord_2", [(product.id, 1)], customer_id="cus_b")
    with pytest.raises(errors.PurchaseLimitExceeded):
        services.reserve_stock(db, make.shop, "ord_3", [(product.id, 5)], customer_id="cus_a")
    assert {o: counted(o) - before[o] for o in before} == {
        "reserved": 1, "out_of_stock": 1, "purchase_limit_exceeded": 1}
