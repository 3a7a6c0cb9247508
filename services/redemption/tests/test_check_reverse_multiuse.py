"""Checking without redeeming, usage hours, reversal within the merchant's window, multi-use coupons, QR payloads
and the redemption and attempt lists."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from weika.events.v1 import orders_pb2
from weika_kit.context import Caller
from weika_kit.errors import DomainError
from weika_redemption.adapters import tables as t
from weika_redemption.domain import codes
from weika_redemption.service_layer import services

CLERK = Caller("mch_tea", "live", staff_id="stf_clerk", role="clerk")
OTHER_CLERK = Caller("mch_tea", "live", staff_id="stf_other", role="clerk")
REVERSED_TOPIC = "weika.redemption.coupon-reversed.v1"
# PAID_AT is Thursday 2026-06-18 10:16 at the counter (UTC+8).
THURSDAY_LUNCH = orders_pb2.CouponUsageWindow(weekdays=[4], start_hour=11, end_hour=14)


def request(code: str = "", *, store_id: str = "sto_a", order_amount: int = 0, qr_payload: str = ""):
    return services.RedeemRequest(code, store_id, order_amount, "till-1", qr_payload)


def redeem(db, code: str = "", *, caller: Caller = CLERK, **kwargs):
    return services.redeem_coupon(db, caller, request(code, **kwargs))


def check(db, code: str = "", *, caller: Caller = CLERK, **kwargs) -> services.CheckResult:
    return services.check_coupon(db, caller, request(code, **kwargs))


def refusal_of(work) -> DomainError:
    with pytest.raises(DomainError) as refused:
        work()
    return refused.value


def results(db, make) -> list[str]:
    return [row.result for row in sorted(make.rows(db, t.redemption_attempts), key=lambda row: row.id)]


# --- check without redeeming


def test_check_of_a_redeemable_coupon_says_so_and_redeems_nothing(db, issue_code, make):
    code = issue_code(face_value=5000)

    result = check(db, code)

    assert (result.redeemable, result.reason_code, result.coupon.face_value) == (True, "", 5000)
    [coupon] = make.rows(db, t.coupons)
    assert (coupon.status, coupon.uses_left) == ("issued", 1)
    assert make.count(db, t.redemptions) == 0
    assert results(db, make) == ["check:ok"]
    assert redeem(db, code).coupon_id == coupon.id


def test_check_before_the_validity_says_from_when(db, issue_code, make):
    code = issue_code(starts_after_days=2)

    result = check(db, code)

    assert (result.redeemable, result.reason_code) == (False, "coupon_not_yet_valid")
    assert result.details == {"valid_from": (make.PAID_AT + timedelta(days=2)).isoformat()}
    assert results(db, make) == ["check:coupon_not_yet_valid"]


def test_check_after_the_validity_says_since_when(db, clock, issue_code, make):
    code = issue_code(validity_days=30)
    clock.advance(days=31)

    result = check(db, code)

    assert result.reason_code == "coupon_expired"
    assert result.details == {"valid_until": (make.PAID_AT + timedelta(days=30)).isoformat()}


def test_check_at_another_store_names_the_stores(db, issue_code):
    code = issue_code(store_ids=["sto_a", "sto_b"])

    result = check(db, code, store_id="sto_z")

    assert result.reason_code == "coupon_not_valid_at_store"
    assert result.details == {"store_id": "sto_z", "store_ids": ["sto_a", "sto_b"]}


def test_check_below_the_threshold_says_how_much_more(db, issue_code):
    code = issue_code(threshold=20000)

    result = check(db, code, order_amount=18500)

    assert result.reason_code == "coupon_threshold_not_met"
    assert result.details == {"threshold": 20000, "order_amount": 18500, "shortfall": 1500}
    assert "¥15.00" in result.message


def test_check_of_a_voided_coupon(db, pay, make):
    paid = pay(make.coupon_line())
    [code] = make.codes_of(db, CLERK, paid.order_id)
    services.void_order_coupons(db, CLERK, paid.order_id, "rfd_1", [("prd_voucher50", 1)], False)

    assert check(db, code).reason_code == "coupon_voided"


def test_check_of_a_redeemed_coupon_says_where_by_whom_and_when(db, clock, issue_code):
    code = issue_code()
    first = redeem(db, code, caller=OTHER_CLERK, store_id="sto_b")
    clock.advance(minutes=5)

    result = check(db, code)

    assert result.reason_code == "coupon_already_redeemed"
    assert result.details is not None
    assert (result.details["store_id"], result.details["operator_id"], result.details["redeemed_at"]) == (
        "sto_b", "stf_other", first.redeemed_at.isoformat())


def test_check_of_an_unknown_code_is_refused_like_a_redemption_and_logged(db, issue_code, make):
    issue_code()

    refused = refusal_of(lambda: check(db, codes.new_code()))

    assert refused.code == "coupon_not_found"
    assert results(db, make) == ["check:coupon_not_found"]


# --- usage hours


def test_redemption_outside_the_usage_hours_is_refused_and_inside_them_accepted(db, clock, issue_code):
    code = issue_code(usage_windows=[THURSDAY_LUNCH])  # now: Thursday 10:16 UTC+8

    refused = refusal_of(lambda: redeem(db, code))
    assert refused.code == "coupon_outside_usage_hours"
    assert refused.details["usage_windows"] == [{"weekdays": [4], "start_hour": 11, "end_hour": 14}]
    assert check(db, code).reason_code == "coupon_outside_usage_hours"

    clock.advance(hours=1)  # Thursday 11:16
    assert redeem(db, code).store_id == "sto_a"


def test_usage_hours_end_is_exclusive_and_other_weekdays_are_refused(db, clock, issue_code):
    code = issue_code(usage_windows=[THURSDAY_LUNCH])
    clock.advance(hours=3, minutes=44)  # Thursday 14:00
    assert check(db, code).reason_code == "coupon_outside_usage_hours"
    clock.advance(days=1, hours=-2)  # Friday 12:00
    assert check(db, code).reason_code == "coupon_outside_usage_hours"


def test_nonsense_usage_windows_issue_nothing(consumer, db, make):
    paid = make.order_paid(make.coupon_line(usage_windows=[orders_pb2.CouponUsageWindow(
        weekdays=[8], start_hour=10, end_hour=12)]))

    assert consumer.process(make.bus_message(paid)) == "dead_lettered"
    assert make.count(db, t.coupons) == 0


# --- reversal


def test_reversal_within_the_window_makes_the_coupon_usable_again_audited_and_published(db, clock, issue_code,
                                                                                          make):
    code = issue_code()
    redemption = redeem(db, code)
    clock.advance(minutes=29)

    reversed_ = services.reverse_redemption(db, OTHER_CLERK, redemption.id, "wrong coupon scanned")

    assert (reversed_.reversed_at, reversed_.reversed_by, reversed_.reversal_reason) == (
        clock.now, "stf_other", "wrong coupon scanned")
    [coupon] = make.rows(db, t.coupons)
    assert (coupon.status, coupon.uses_left, coupon.redeemed_at) == ("issued", 1, None)
    [audit] = make.rows(db, t.redemption_reversals)
    assert (audit.redemption_id, audit.operator_id, audit.reason) == (redemption.id, "stf_other",
                                                                       "wrong coupon scanned")
    [(event, _)] = make.outbox(db, REVERSED_TOPIC)
    assert (event.redemption_id, event.coupon_id, event.operator_id, event.reason, event.store_id) == (
        redemption.id, coupon.id, "stf_other", "wrong coupon scanned", "sto_a")
    assert redeem(db, code).coupon_id == coupon.id


def test_a_reversed_redemption_cannot_be_reversed_twice(db, issue_code, make):
    redemption = redeem(db, issue_code())
    services.reverse_redemption(db, CLERK, redemption.id, "mistake")

    refused = refusal_of(lambda: services.reverse_redemption(db, CLERK, redemption.id, "again"))

    assert refused.code == "redemption_already_reversed"
    [coupon] = make.rows(db, t.coupons)
    assert coupon.uses_left == 1  # not 2
    assert make.count(db, t.redemption_reversals) == 1


def test_reversal_after_the_default_window_of_30_minutes_is_refused(db, clock, issue_code, make):
    redemption = redeem(db, issue_code())
    clock.advance(minutes=30, seconds=1)

    refused = refusal_of(lambda: services.reverse_redemption(db, CLERK, redemption.id, "late"))

    assert (refused.code, refused.details["reversal_window_minutes"]) == ("reversal_window_passed", 30)
    [coupon] = make.rows(db, t.coupons)
    assert coupon.status == "redeemed"


def test_the_merchants_reversal_window_setting_is_applied(db, clock, issue_code):
    assert services.reversal_window_minutes(db, CLERK) == 30
    services.set_reversal_window_minutes(db, CLERK, 60)
    assert services.reversal_window_minutes(db, CLERK) == 60
    assert services.reversal_window_minutes(db, Caller("mch_other", "live")) == 30
    redemption = redeem(db, issue_code())
    clock.advance(minutes=45)

    assert services.reverse_redemption(db, CLERK, redemption.id, "mistake").reversed_at == clock.now

    services.set_reversal_window_minutes(db, CLERK, 5)
    later = redeem(db, issue_code())
    clock.advance(minutes=6)
    assert refusal_of(lambda: services.reverse_redemption(db, CLERK, later.id, "x")).code == "reversal_window_passed"


def test_reversal_needs_a_reason_a_sane_window_and_a_redemption_of_the_caller(db, issue_code):
    redemption = redeem(db, issue_code())
    assert refusal_of(lambda: services.reverse_redemption(db, CLERK, redemption.id, " ")).code == (
        "reversal_reason_required")
    assert refusal_of(lambda: services.set_reversal_window_minutes(db, CLERK, 0)).code == "invalid_reversal_window"
    for stranger in (Caller("mch_other", "live", staff_id="x"), Caller("mch_tea", "test", staff_id="x"),
                     Caller("mch_tea", "live", staff_id="x", store_ids=("sto_b",))):
        refused = refusal_of(lambda s=stranger: services.reverse_redemption(db, s, redemption.id, "mine"))
        assert refused.code == "redemption_not_found"


def test_a_voided_coupon_cannot_get_its_redemption_reversed(db, pay, make):
    paid = pay(make.coupon_line(max_uses=2))
    [code] = make.codes_of(db, CLERK, paid.order_id)
    redemption = redeem(db, code)
    services.void_order_coupons(db, CLERK, paid.order_id, "rfd_1", [("prd_voucher50", 1)], False)

    refused = refusal_of(lambda: services.reverse_redemption(db, CLERK, redemption.id, "mistake"))

    assert refused.code == "coupon_voided"
    [row] = make.rows(db, t.redemptions)
    assert row.reversed_at is None  # rolled back with the refusal


# --- multi-use (次卡)


def test_a_three_use_coupon_is_redeemed_exactly_three_times(db, pay, make):
    paid = pay(make.coupon_line(max_uses=3))
    [code] = make.codes_of(db, CLERK, paid.order_id)

    used = [redeem(db, code) for _ in range(3)]
    refused = refusal_of(lambda: redeem(db, code))

    assert len({r.id for r in used}) == 3
    assert refused.code == "coupon_already_redeemed"
    [coupon] = make.rows(db, t.coupons)
    assert (coupon.status, coupon.uses_total, coupon.uses_left) == ("redeemed", 3, 0)
    assert make.count(db, t.redemptions) == 3


def test_reversing_one_use_of_a_used_up_multi_use_coupon_gives_exactly_one_use_back(db, pay, make):
    paid = pay(make.coupon_line(max_uses=2))
    [code] = make.codes_of(db, CLERK, paid.order_id)
    first, _ = redeem(db, code), redeem(db, code)

    services.reverse_redemption(db, CLERK, first.id, "mistake")

    [coupon] = make.rows(db, t.coupons)
    assert (coupon.status, coupon.uses_left) == ("issued", 1)
    redeem(db, code)
    assert refusal_of(lambda: redeem(db, code)).code == "coupon_already_redeemed"


def test_mark_redeemed_never_takes_a_use_that_is_not_there(db, pay, make):
    """The conditional update itself refuses, even when called past the domain check (a lost race)."""
    from weika_redemption.adapters.repository import RedemptionRepository

    paid = pay(make.coupon_line(max_uses=2))
    [item] = services.list_coupons(db, CLERK, paid.order_id).coupons
    with db.unit_of_work() as uow:
        repo = RedemptionRepository(uow, CLERK)
        taken = [repo.mark_redeemed(item.coupon.id, at=uow.now(), store_id="sto_a", operator_id="x")
                 for _ in range(3)]
        uow.commit()
    assert taken == [True, True, False]


# --- QR payloads


def test_a_scanned_qr_payload_redeems_its_coupon(db, pay, make):
    paid = pay(make.coupon_line())
    [item] = services.list_coupons(db, CLERK, paid.order_id).coupons
    payload = codes.qr_payload(item.coupon.id, item.code)
    assert payload.startswith(f"WK1.{item.coupon.id}.") and item.code.replace("-", "") in payload

    assert redeem(db, qr_payload=payload).coupon_id == item.coupon.id
    assert refusal_of(lambda: redeem(db, qr_payload=payload)).code == "coupon_already_redeemed"


def test_an_edited_qr_payload_is_refused_as_unknown_and_recorded(db, pay, issue_code, make):
    paid = pay(make.coupon_line())
    [item] = services.list_coupons(db, CLERK, paid.order_id).coupons
    other_code = issue_code()
    prefix, coupon_id, code, signature = codes.qr_payload(item.coupon.id, item.code).split(".")
    flipped = "0" if signature[0] != "0" else "1"
    edited = [
        f"{prefix}.{coupon_id}.{codes.normalize(other_code)}.{signature}",  # someone else's code, same signature
        f"{prefix}.{coupon_id}.{code}.{flipped}{signature[1:]}",
        f"{prefix}.cpn_forged.{code}.{signature}",
        f"{prefix}.{coupon_id}.{code}",
    ]
    for payload in edited:
        assert refusal_of(lambda p=payload: redeem(db, qr_payload=p)).code == "coupon_not_found"
    assert results(db, make) == ["coupon_not_found"] * len(edited)
    assert make.count(db, t.redemptions) == 0


def test_code_and_qr_payload_are_exclusive(db, issue_code):
    code = issue_code()
    assert refusal_of(lambda: redeem(db, code, qr_payload="WK1.x.y.z")).code == "code_or_qr_payload_required"
    assert refusal_of(lambda: redeem(db)).code == "code_or_qr_payload_required"


# --- lists


def test_redemptions_are_listed_newest_first_filtered_and_paginated(db, clock, issue_code):
    made = []
    for i in range(5):
        made.append(redeem(db, issue_code(), caller=CLERK if i % 2 == 0 else OTHER_CLERK,
                           store_id="sto_a" if i < 4 else "sto_b"))
        clock.advance(hours=1)

    page = services.list_redemptions(db, CLERK, services.ListFilter(page_size=2))
    second = services.list_redemptions(db, CLERK, services.ListFilter(page_size=2, page_token=page.next_page_token))
    third = services.list_redemptions(db, CLERK, services.ListFilter(page_size=2, page_token=second.next_page_token))
    assert [r.id for r in page.redemptions + second.redemptions + third.redemptions] == [r.id for r in made[::-1]]
    assert third.next_page_token == ""

    by_store = services.list_redemptions(db, CLERK, services.ListFilter(store_id="sto_b")).redemptions
    assert [r.id for r in by_store] == [made[4].id]
    by_operator = services.list_redemptions(db, CLERK, services.ListFilter(operator_id="stf_other")).redemptions
    assert [r.id for r in by_operator] == [made[3].id, made[1].id]
    window = services.ListFilter(start=made[1].redeemed_at, end=made[3].redeemed_at)
    assert [r.id for r in services.list_redemptions(db, CLERK, window).redemptions] == [made[2].id, made[1].id]
    assert services.list_redemptions(db, Caller("mch_other", "live"), services.ListFilter()).redemptions == []


def test_attempts_are_listed_with_checks_and_refusals_filtered_and_paginated(db, clock, issue_code):
    code = issue_code(threshold=1000)
    check(db, code, order_amount=500)
    clock.advance(minutes=1)
    refusal_of(lambda: redeem(db, codes.new_code(), caller=OTHER_CLERK, store_id="sto_b"))
    clock.advance(minutes=1)
    redeem(db, code, order_amount=1500)

    everything = services.list_attempts(db, CLERK, services.ListFilter())
    assert [a.result for a in everything.attempts] == ["ok", "coupon_not_found", "check:coupon_threshold_not_met"]
    first = services.list_attempts(db, CLERK, services.ListFilter(page_size=2))
    rest = services.list_attempts(db, CLERK, services.ListFilter(page_size=2, page_token=first.next_page_token))
    assert [a.id for a in first.attempts + rest.attempts] == [a.id for a in everything.attempts]
    assert [a.result for a in services.list_attempts(db, CLERK, services.ListFilter(
        operator_id="stf_other")).attempts] == ["coupon_not_found"]
    assert [a.store_id for a in services.list_attempts(db, CLERK, services.ListFilter(
        store_id="sto_b")).attempts] == ["sto_b"]
    late = services.ListFilter(start=clock.now)
    assert [a.result for a in services.list_attempts(db, CLERK, late).attempts] == ["ok"]
    refused = refusal_of(lambda: services.list_attempts(db, CLERK, services.ListFilter(page_token="garbage!")))
    assert refused.code == "invalid_page_token"


def test_store_staff_see_only_their_stores_history_and_may_not_ask_for_another(db, issue_code):
    redeem(db, issue_code(), store_id="sto_a")
    redeem(db, issue_code(), caller=OTHER_CLERK, store_id="sto_b")
    at_a = Caller("mch_tea", "live", staff_id="stf_a", role="clerk", store_ids=("sto_a",))
    assert [r.store_id for r in services.list_redemptions(db, at_a, services.ListFilter()).redemptions] == ["sto_a"]
    assert {a.store_id for a in services.list_attempts(db, at_a, services.ListFilter()).attempts} == {"sto_a"}
    for listing in (services.list_redemptions, services.list_attempts):
        refused = refusal_of(lambda f=listing: f(db, at_a, services.ListFilter(store_id="sto_b")))
        assert refused.code == "store_not_permitted"
    # merchant-wide callers still see both stores
    assert {r.store_id for r in services.list_redemptions(db, CLERK, services.ListFilter()).redemptions} == \
        {"sto_a", "sto_b"}


def test_check_details_travel_as_json_through_grpc(db, issue_code):
    from weika.redemption.v1 import redemption_pb2 as pb
    from weika_kit.context import bound
    from weika_redemption.entrypoints.grpc_api import RedemptionServicer

    code = issue_code(threshold=20000)
    with bound(caller=CLERK):
        response = RedemptionServicer(db).CheckCoupon(pb.CheckCouponRequest(code=code, store_id="sto_a",
                                                                            order_amount=100), None)
    assert (response.redeemable, response.reason_code) == (False, "coupon_threshold_not_met")
    assert json.loads(response.details_json)["shortfall"] == 19900
    assert response.coupon.code == "" and response.coupon.threshold == 20000


def test_a_qr_only_coupon_is_refused_when_its_code_is_typed_and_accepted_when_scanned(db, pay, make):
    paid = pay(make.coupon_line(redeem_methods=["qr"]))
    [code] = make.codes_of(db, CLERK, paid.order_id)
    [coupon] = make.rows(db, t.coupons)

    typed = refusal_of(lambda: redeem(db, code))
    checked = services.check_coupon(db, CLERK, request(code))
    scanned = services.redeem_coupon(db, CLERK, request(qr_payload=codes.qr_payload(coupon.id, code)))

    assert typed.code == "redeem_method_not_allowed" and "scanning its QR code" in typed.message
    assert (checked.redeemable, checked.reason_code) == (False, "redeem_method_not_allowed")
    assert scanned.coupon_id == coupon.id


def test_a_code_only_coupon_is_refused_when_scanned(db, pay, make):
    paid = pay(make.coupon_line(redeem_methods=["code"]))
    [code] = make.codes_of(db, CLERK, paid.order_id)
    [coupon] = make.rows(db, t.coupons)

    scanned = refusal_of(lambda: services.redeem_coupon(
        db, CLERK, request(qr_payload=codes.qr_payload(coupon.id, code))))

    assert scanned.code == "redeem_method_not_allowed"
    assert redeem(db, code).coupon_id == coupon.id
