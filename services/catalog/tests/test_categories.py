"""Categories: two levels, rename, reorder by position, delete only when empty, tenancy."""

from __future__ import annotations

import pytest

from weika_catalog.domain import errors
from weika_catalog.service_layer import services
from weika_kit.errors import InvalidArgument


def names(db, caller) -> list[str]:  # type: ignore[no-untyped-def]
    return [c.name for c in services.list_categories(db, caller)]


def test_new_categories_go_last_and_a_position_moves_one_first(db, make):
    for name in ("餐饮券", "零售券", "服务券"):
        make.category(db, name=name)
    assert names(db, make.shop) == ["餐饮券", "零售券", "服务券"]
    services_row = [c for c in services.list_categories(db, make.shop) if c.name == "服务券"][0]
    services.update_category(db, make.shop, services_row.id, position=0)
    services.update_category(db, make.shop, [c for c in services.list_categories(db, make.shop)
                                             if c.name == "餐饮券"][0].id, position=5)
    assert names(db, make.shop) == ["服务券", "零售券", "餐饮券"]


def test_rename_changes_only_the_name(db, make):
    category_id = make.category(db, name="餐饮")
    renamed = services.update_category(db, make.shop, category_id, name="  餐饮券 ")
    assert (renamed.name, renamed.position, renamed.parent_id) == ("餐饮券", 0, None)
    with pytest.raises(InvalidArgument):
        services.update_category(db, make.shop, category_id, name=" ")


def test_categories_nest_one_level_only(db, make):
    top = make.category(db, name="券")
    child = make.category(db, name="餐饮券", parent_id=top)
    with pytest.raises(InvalidArgument) as refused:
        make.category(db, name="火锅券", parent_id=child)
    assert refused.value.code == "category_too_deep"


def test_a_category_with_a_product_or_a_child_cannot_be_deleted(db, make):
    top = make.category(db, name="券")
    child = make.category(db, name="餐饮券", parent_id=top)
    make.product(db, category_id=child)
    for category_id, details in ((top, {"products": 0, "children": 1}), (child, {"products": 1, "children": 0})):
        with pytest.raises(errors.CategoryNotEmpty) as refused:
            services.delete_category(db, make.shop, category_id)
        assert {k: refused.value.details[k] for k in details} == details
    assert names(db, make.shop) == ["券", "餐饮券"]


def test_an_empty_category_is_deleted_and_then_unknown(db, make):
    category_id = make.category(db)
    services.delete_category(db, make.shop, category_id)
    assert names(db, make.shop) == []
    with pytest.raises(errors.CategoryNotFound):
        services.delete_category(db, make.shop, category_id)


def test_another_merchant_can_neither_rename_nor_delete_a_category(db, make):
    category_id = make.category(db)
    with pytest.raises(errors.CategoryNotFound):
        services.update_category(db, make.rival, category_id, name="mine")
    with pytest.raises(errors.CategoryNotFound):
        services.delete_category(db, make.rival, category_id)
    assert names(db, make.rival) == []
