"""Products of three kinds, their list (filters, cursor pages), PATCH with stock moves that explain the count."""

from __future__ import annotations

import pytest

from weika_catalog.domain import errors
from weika_catalog.domain.model import VirtualSpec
from weika_catalog.service_layer import services
from weika_kit.errors import InvalidArgument

CHANGED = "weika.catalog.product-changed.v1"
STOCK = "weika.catalog.stock-changed.v1"


def test_each_kind_keeps_its_own_fields(db, make):
    cat = make.category(db)
    virtual = make.product(db, kind="virtual", category_id=cat, delivery="top_up")
    physical = make.product(db, kind="physical", category_id=cat)
    coupon = make.product(db, kind="coupon", category_id=cat)
    assert services.get_product(db, make.shop, virtual.id).virtual == VirtualSpec("top_up", 2, "sku_1")
    assert services.get_product(db, make.shop, physical.id).physical.weight_grams == 500
    assert services.get_product(db, make.shop, coupon.id).coupon == make.coupon_rule()


def test_a_virtual_product_needs_its_delivery_and_a_coupon_cannot_carry_virtual_fields(db, make):
    cat = make.category(db)
    base = dict(name="卡", description="", category_id=cat, price=100, stock_mode="unlimited", quantity=0)
    with pytest.raises(errors.InvalidProduct) as refused:
        services.create_product(db, make.shop, services.NewProduct(kind="virtual", coupon=None, **base))
    assert refused.value.details == {"field": "virtual"}
    with pytest.raises(errors.InvalidProduct) as refused:
        services.create_product(db, make.shop, services.NewProduct(
            kind="coupon", coupon=make.coupon_rule(), virtual=VirtualSpec("card_key"), **base))
    assert refused.value.details == {"field": "virtual"}


def _ids(products) -> list[str]:  # type: ignore[no-untyped-def]
    return [p.id for p in products]


def test_products_are_filtered_by_kind_category_shelf_and_name_text(db, make):
    top = make.category(db, name="券")
    child = make.category(db, name="餐饮券", parent_id=top)
    other = make.category(db, name="实物")
    tea = make.product(db, kind="coupon", name="奶茶 50% off", category_id=child)
    cup = make.product(db, kind="physical", name="Tea Cup", category_id=other)
    card = make.product(db, kind="virtual", name="视频会员", category_id=other)
    services.update_product(db, make.shop, card.id, services.ProductChanges(on_shelf=False))

    def listed(**where) -> list[str]:  # type: ignore[no-untyped-def]
        return _ids(services.list_products(db, make.shop, services.ProductFilter(**where))[0])

    assert listed(kind="physical") == [cup.id]
    assert listed(category_id=top) == [tea.id]  # a top-level category lists its children's products
    assert listed(on_shelf=False) == [card.id]
    assert set(listed(on_shelf=True)) == {tea.id, cup.id}
    assert listed(text="tea") == [cup.id]
    assert listed(text="50%") == [tea.id]  # % is a character here, not a wildcard
    assert listed(text="%") == [tea.id]
    assert _ids(services.list_products(db, make.rival, services.ProductFilter())[0]) == []


def test_cursor_pages_list_every_product_once_newest_first(db, make):
    cat = make.category(db)
    made = [make.product(db, name=f"p{i}", category_id=cat).id for i in range(7)]
    seen, cursor, pages = [], "", 0
    while True:
        page, cursor = services.list_products(db, make.shop, services.ProductFilter(), limit=3, cursor=cursor)
        seen += _ids(page)
        pages += 1
        if not cursor:
            break
    assert pages == 3
    assert sorted(seen) == sorted(made) and len(seen) == len(set(seen))
    assert seen[0] == made[-1]


def test_a_page_size_above_100_and_a_forged_cursor_are_refused(db, make):
    with pytest.raises(InvalidArgument) as refused:
        services.list_products(db, make.shop, services.ProductFilter(), limit=101)
    assert refused.value.code == "invalid_limit"
    with pytest.raises(errors.InvalidCursor):
        services.list_products(db, make.shop, services.ProductFilter(), cursor="not-a-cursor")


def test_patch_changes_fields_and_announces_product_changed(db, make):
    product = make.product(db)
    other = make.category(db, name="其他")
    changed = services.update_product(db, make.shop, product.id, services.ProductChanges(
        name=" 大茶杯 ", price=2500, on_shelf=False, category_id=other, description="陶瓷"))
    assert (changed.name, changed.price, changed.on_shelf, changed.category_id, changed.description) == (
        "大茶杯", 2500, False, other, "陶瓷")
    last = make.outbox(db, CHANGED)[-1]
    assert last.key == product.id and len(make.outbox(db, CHANGED)) == 2
    with pytest.raises(errors.CategoryNotFound):
        services.update_product(db, make.shop, product.id, services.ProductChanges(category_id="cat_nope"))
    with pytest.raises(errors.InvalidProduct):
        services.update_product(db, make.shop, product.id, services.ProductChanges(price=-1))


def test_patch_replaces_a_coupon_rule_for_orders_from_now_on_and_refuses_a_contradiction(db, make):
    coupon = make.product(db, kind="coupon")
    reserved_before = services.reserve_stock(db, make.shop, "ord_1", [(coupon.id, 1)])
    rule = make.coupon_rule(face_value=2000, threshold=10000, store_ids=())

    changed = services.update_product(db, make.shop, coupon.id, services.ProductChanges(coupon=rule))

    assert changed.coupon == rule == services.get_product(db, make.shop, coupon.id).coupon
    assert [line.product.coupon.face_value for line in reserved_before] == [1000]  # sold with the old terms
    [after] = services.reserve_stock(db, make.shop, "ord_2", [(coupon.id, 1)])
    assert after.product.coupon.face_value == 2000
    assert len(make.outbox(db, CHANGED)) == 2
    with pytest.raises(errors.FaceValueExceedsThreshold) as refused:  # 满50减60 makes no sense
        services.update_product(db, make.shop, coupon.id, services.ProductChanges(
            coupon=make.coupon_rule(face_value=6000, threshold=5000), name="renamed"))
    assert refused.value.code == "face_value_exceeds_threshold"
    unchanged = services.get_product(db, make.shop, coupon.id)
    assert (unchanged.coupon, unchanged.name) == (rule, coupon.name)  # nothing half-written
    cup = make.product(db)
    with pytest.raises(errors.InvalidProduct) as not_a_coupon:
        services.update_product(db, make.shop, cup.id, services.ProductChanges(coupon=rule))
    assert not_a_coupon.value.details["field"] == "coupon"


def test_stock_adjustments_are_moves_with_actor_and_reason_that_explain_the_count(db, make):
    product = make.product(db, quantity=10)
    services.update_product(db, make.shop, product.id, services.ProductChanges(stock_adjustment=5,
                                                                               stock_reason="delivery from supplier"))
    services.reserve_stock(db, make.shop, "ord_1", [(product.id, 3)])
    services.update_product(db, make.shop, product.id, services.ProductChanges(stock_adjustment=-2,
                                                                               stock_reason="damaged"))
    moves, _ = services.list_stock_moves(db, make.shop, product.id)
    assert [(m.reason, m.delta, m.note) for m in moves] == [
        ("adjusted", -2, "damaged"), ("reserved", -3, ""), ("adjusted", 5, "delivery from supplier"),
        ("created", 10, "")]
    assert {m.actor for m in moves} == {"key_1"}
    assert services.get_product(db, make.shop, product.id).available == sum(m.delta for m in moves) == 10
    assert [row.key for row in make.outbox(db, STOCK)] == [product.id] * 3


def test_an_adjustment_below_zero_or_without_reason_is_refused_and_changes_nothing(db, make):
    product = make.product(db, quantity=2)
    with pytest.raises(InvalidArgument) as refused:
        services.update_product(db, make.shop, product.id, services.ProductChanges(
            stock_adjustment=-3, stock_reason="stocktake", price=1))
    assert refused.value.code == "stock_would_go_negative"
    with pytest.raises(InvalidArgument) as refused:
        services.update_product(db, make.shop, product.id, services.ProductChanges(stock_adjustment=1))
    assert refused.value.details == {"field": "stock_reason"}
    after = services.get_product(db, make.shop, product.id)
    assert (after.available, after.price) == (2, 1500)


def test_stock_moves_page_with_a_cursor(db, make):
    product = make.product(db, quantity=10)
    for i in range(4):
        services.update_product(db, make.shop, product.id, services.ProductChanges(stock_adjustment=1,
                                                                                   stock_reason=f"r{i}"))
    first, cursor = services.list_stock_moves(db, make.shop, product.id, limit=3)
    second, last = services.list_stock_moves(db, make.shop, product.id, limit=3, cursor=cursor)
    assert [m.note for m in first + second] == ["r3", "r2", "r1", "r0", ""] and last == ""
