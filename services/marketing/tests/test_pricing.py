"""The pricing rules on their own: full-reduction tiers, stacking, refusals with reasons, validation."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from weika_kit.errors import InvalidArgument
from weika_marketing.domain.model import Campaign, QuoteLine, Tier, quote

NOW = datetime(2025, 6, 18, 2, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def campaign(campaign_id: str, *tiers: tuple[int, int], stackable: bool = False, **kw) -> Campaign:
    values = dict(id=campaign_id, merchant_id="mch_1", mode="live", kind="full_reduction", name=campaign_id,
                  tiers=tuple(Tier(t, r) for t, r in tiers), stackable=stackable, starts_at=NOW - DAY,
                  ends_at=NOW + DAY, active=True, created_at=NOW - DAY)
    return Campaign(**{**values, **kw})


def basket(*amounts: int) -> list[QuoteLine]:
    return [QuoteLine(f"prd_{i}", "cat_1", 1, amount) for i, amount in enumerate(amounts)]


def test_quote_without_campaigns_is_the_subtotal_with_no_discount():
    result = quote([QuoteLine("prd_1", "cat_1", 3, 1990), QuoteLine("prd_2", "cat_1", 1, 10)], [], NOW)

    assert (result.subtotal, result.discount_amount, result.total) == (5980, 0, 5980)
    assert (result.applied, result.refused) == ((), ())


def test_full_reduction_200_minus_50_applies_at_exactly_200():
    result = quote(basket(15000, 5000), [campaign("cmp_618", (20000, 5000))], NOW)

    assert (result.subtotal, result.discount_amount, result.total) == (20000, 5000, 15000)
    assert [(a.campaign_id, a.kind, a.amount) for a in result.applied] == [("cmp_618", "full_reduction", 5000)]
    assert result.applied[0].description == "cmp_618: 满200.00减50.00"


def test_full_reduction_is_refused_at_199_99_with_the_shortfall():
    result = quote(basket(19999), [campaign("cmp_618", (20000, 5000))], NOW)

    assert (result.discount_amount, result.total, result.applied) == (0, 19999, ())
    [refused] = result.refused
    assert (refused.campaign_id, refused.reason_code, refused.shortfall) == ("cmp_618", "threshold_not_met", 1)
    assert "add 0.01 more" in refused.description


def test_the_highest_tier_reached_applies():
    tiered = campaign("cmp_tiers", (10000, 1000), (20000, 3000), (50000, 10000))

    assert quote(basket(49999), [tiered], NOW).discount_amount == 3000
    assert quote(basket(50000), [tiered], NOW).discount_amount == 10000
    assert quote(basket(10000), [tiered], NOW).discount_amount == 1000


def test_of_two_non_stackable_campaigns_the_better_applies_and_the_other_is_refused():
    small, big = campaign("cmp_small", (20000, 3000)), campaign("cmp_big", (20000, 5000))

    for order in ([small, big], [big, small]):
        result = quote(basket(25000), order, NOW)
        assert [(a.campaign_id, a.amount) for a in result.applied] == [("cmp_big", 5000)]
        assert [(r.campaign_id, r.reason_code) for r in result.refused] == [("cmp_small", "not_stackable")]
        assert result.total == 20000


def test_stackable_campaigns_combine_and_win_over_a_smaller_non_stackable_one():
    a = campaign("cmp_a", (10000, 2000), stackable=True)
    b = campaign("cmp_b", (10000, 2000), stackable=True)
    alone = campaign("cmp_alone", (10000, 3000))

    result = quote(basket(10000), [a, b, alone], NOW)

    assert sorted(a.campaign_id for a in result.applied) == ["cmp_a", "cmp_b"]
    assert result.discount_amount == 4000
    assert [(r.campaign_id, r.reason_code) for r in result.refused] == [("cmp_alone", "not_stackable")]


def test_a_non_stackable_campaign_worth_more_than_all_stackable_ones_applies_alone():
    a = campaign("cmp_a", (10000, 1000), stackable=True)
    alone = campaign("cmp_alone", (10000, 3000))

    result = quote(basket(10000), [a, alone], NOW)

    assert [a.campaign_id for a in result.applied] == ["cmp_alone"]
    assert [(r.campaign_id, r.reason_code) for r in result.refused] == [("cmp_a", "not_stackable")]


def test_stacked_reductions_never_take_the_total_below_zero():
    stack = [campaign(f"cmp_{i}", (10000, 9999), stackable=True) for i in range(3)]

    result = quote(basket(10000), stack, NOW)

    assert (result.discount_amount, result.total) == (10000, 0)
    assert [r.reason_code for r in result.refused] == ["nothing_left_to_discount"]


def test_campaigns_outside_their_window_or_inactive_are_not_offered():
    offers = [campaign("cmp_future", (100, 50), starts_at=NOW + DAY, ends_at=NOW + 2 * DAY),
              campaign("cmp_ended", (100, 50), starts_at=NOW - 2 * DAY, ends_at=NOW),
              replace(campaign("cmp_off", (100, 50)), active=False)]

    result = quote(basket(10000), offers, NOW)

    assert (result.discount_amount, result.applied, result.refused) == (0, (), ())


@pytest.mark.parametrize(("changes", "code"), [
    ({"kind": "flash_sale"}, "unsupported_campaign_kind"),
    ({"name": ""}, "invalid_campaign"),
    ({"tiers": ()}, "invalid_campaign"),
    ({"tiers": (Tier(20000, 0),)}, "invalid_campaign"),
    ({"tiers": (Tier(20000, 20000),)}, "reduction_not_below_threshold"),
    ({"tiers": (Tier(30000, 5000), Tier(20000, 6000))}, "tiers_not_ascending"),
    ({"tiers": (Tier(20000, 5000), Tier(30000, 5000))}, "tiers_not_ascending"),
    ({"ends_at": NOW - DAY}, "campaign_ends_before_start"),
    ({"ends_at": None}, "invalid_campaign"),
])
def test_invalid_campaigns_are_refused_with_a_stable_code(changes, code):
    with pytest.raises(InvalidArgument) as refused:
        replace(campaign("cmp_x", (20000, 5000)), **changes).validate()
    assert refused.value.code == code


@pytest.mark.parametrize(("lines", "code"), [
    ([], "empty_basket"),
    ([QuoteLine("prd_1", "cat_1", 0, 100)], "invalid_quantity"),
    ([QuoteLine("prd_1", "cat_1", -1, 100)], "invalid_quantity"),
    ([QuoteLine("prd_1", "cat_1", 1, -1)], "invalid_unit_price"),
    ([QuoteLine("prd_1", "cat_1", 1, 100)] * 201, "too_many_lines"),
])
def test_invalid_lines_are_refused_with_a_stable_code(lines, code):
    with pytest.raises(InvalidArgument) as refused:
        quote(lines, [], NOW)
    assert refused.value.code == code


def test_a_free_line_is_a_valid_line():
    assert quote([QuoteLine("prd_gift", "cat_1", 2, 0)], [], NOW).total == 0
