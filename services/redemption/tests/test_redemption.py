"""Redeeming a code at the counter: the checks in their contract order, exactly once, every attempt recorded."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import event, update

from weika_kit.context import Caller
from weika_kit.errors import Conflict, DomainError, InvalidArgument, NotFound, PermissionDenied
from weika_kit.protos import from_timestamp
from weika_redemption.adapters import tables as t
from weika_redemption.domain import codes
from weika_redemption.service_layer import services

CLERK = Caller("mch_tea", "live", staff_id="stf_clerk", role="clerk")


def redeem(db, code: str, *, caller: Caller = CLERK, store_id: str = "sto_a", order_amount: int = 0,
           device_id: str = "till-1"):
    return services.redeem_coupon(db, caller, services.RedeemRequest(code, store_id, order_amount, device_id))


def refusal(db, code: str, **kwargs) -> DomainError:
    with pytest.raises(DomainError) as refused:
        redeem(db, code, **kwargs)
    return refused.value


def attempts(db, make) -> list:
    return sorted(make.rows(db, t.redemption_attempts), key=lambda row: row.id)


def test_valid_code_is_redeemed_and_recorded_with_time_store_and_operator(db, clock, issue_code, make):
    code = issue_code(threshold=20000, face_value=5000)
    clock.advance(days=3)

    redemption = redeem(db, code, store_id="sto_a", order_amount=23800, device_id="till-7")

    assert (redemption.store_id, redemption.operator_id, redemption.order_amount, redemption.face_value,
            redemption.redeemed_at) == ("sto_a", "stf_clerk", 23800, 5000, clock.now)
    [coupon] = make.rows(db, t.coupons)
    assert (coupon.status, coupon.redeemed_store_id, coupon.redeemed_by) == ("redeemed", "sto_a", "stf_clerk")
    assert redemption.coupon_id == coupon.id
    [row] = make.rows(db, t.redemptions)
    assert (row.id, row.coupon_id, row.order_amount) == (redemption.id, coupon.id, 23800)
    [attempt] = attempts(db, make)
    assert (attempt.result, attempt.coupon_id, attempt.store_id, attempt.operator_id, attempt.device_id) == (
        "ok", coupon.id, "sto_a", "stf_clerk", "till-7")
    assert attempt.code_fingerprint == services.code_fingerprint(code)


def test_coupon_redeemed_event_carries_what_analytics_needs_and_never_the_code(db, clock, issue_code, make):
    code = issue_code(face_value=5000)
    clock.advance(hours=5)

    redemption = redeem(db, code, store_id="sto_a", order_amount=12000)

    [(published, envelope)] = make.outbox(db, make.REDEEMED_TOPIC)
    assert (published.redemption_id, published.coupon_id, published.merchant_id, published.mode) == (
        redemption.id, redemption.coupon_id, "mch_tea", "live")
    assert (published.product_id, published.category_id, published.customer_id) == (
        "prd_voucher50", "cat_dining", "cus_buyer")
    assert published.order_id.startswith("ord_")
    assert (published.store_id, published.operator_id, published.order_amount, published.face_value) == (
        "sto_a", "stf_clerk", 12000, 5000)
    assert from_timestamp(published.redeemed_at) == clock.now
    assert envelope["subject"] == redemption.coupon_id
    wire = published.SerializeToString() + str(envelope).encode()
    assert code.encode() not in wire and codes.normalize(code).encode() not in wire


def test_code_typed_in_lower_case_without_hyphens_and_with_confusable_letters_is_accepted(db, issue_code):
    code = issue_code()
    while "0" not in code and "1" not in code:  # make sure the confusable letters are exercised
        code = issue_code()
    typed = code.lower().replace("-", " ").replace("0", "o").replace("1", "l")

    assert redeem(db, typed).store_id == "sto_a"


def test_second_redemption_of_same_code_is_refused_with_when_and_where_it_was_used(db, clock, issue_code):
    code = issue_code()
    first = redeem(db, code, store_id="sto_a")
    clock.advance(minutes=2)

    refused = refusal(db, code, store_id="sto_b")

    assert isinstance(refused, Conflict)
    assert refused.code == "coupon_already_redeemed"
    assert refused.details == {"coupon_id": first.coupon_id, "redeemed_at": first.redeemed_at.isoformat(),
                               "store_id": "sto_a", "operator_id": "stf_clerk", "uses_total": 1}


def test_unknown_code_is_refused_as_not_found_and_the_attempt_is_recorded(db, issue_code, make):
    issue_code()
    never_issued = codes.new_code()

    refused = refusal(db, never_issued, device_id="till-9")

    assert isinstance(refused, NotFound) and refused.code == "coupon_not_found"
    [attempt] = attempts(db, make)
    assert (attempt.result, attempt.coupon_id, attempt.device_id) == ("coupon_not_found", None, "till-9")
    assert attempt.code_fingerprint == services.code_fingerprint(never_issued)


def test_mistyped_code_is_refused_by_its_check_symbol_without_looking_coupons_up(db, issue_code, make):
    code = issue_code()
    normalized = codes.normalize(code)
    wrong = "1" if normalized[5] != "1" else "2"
    mistyped = normalized[:5] + wrong + normalized[6:]
    statements: list[str] = []
    event.listen(db.engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *args: statements.append(statement))

    refused = refusal(db, mistyped)

    assert refused.code == "coupon_not_found"
    assert statements and not any("FROM coupons" in s for s in statements)
    [attempt] = attempts(db, make)
    assert (attempt.result, attempt.coupon_id) == ("coupon_not_found", None)
    assert make.rows(db, t.coupons)[0].status == "issued"


def test_voided_coupon_is_refused(db, issue_code):
    code = issue_code()
    with db.engine.begin() as conn:
        conn.execute(update(t.coupons).values(status="voided"))

    refused = refusal(db, code)

    assert isinstance(refused, Conflict) and refused.code == "coupon_voided"


def test_coupon_before_its_validity_starts_is_refused_with_the_start(db, issue_code, make):
    code = issue_code(starts_after_days=1)

    refused = refusal(db, code)

    assert isinstance(refused, Conflict) and refused.code == "coupon_not_yet_valid"
    assert refused.details == {"valid_from": (make.PAID_AT + timedelta(days=1)).isoformat()}


def test_coupon_after_its_validity_is_refused_with_the_day_it_expired(db, clock, issue_code, make):
    code = issue_code(validity_days=12)  # paid 2026-06-18 02:16 UTC -> until 2026-06-30 02:16 UTC
    clock.advance(days=12, seconds=1)

    refused = refusal(db, code)

    assert isinstance(refused, Conflict) and refused.code == "coupon_expired"
    assert refused.message == "Coupon expired on 2026-06-30"
    assert refused.details == {"valid_until": (make.PAID_AT + timedelta(days=12)).isoformat()}


def test_coupon_is_still_redeemable_at_the_last_moment_of_its_validity(db, clock, issue_code):
    code = issue_code(validity_days=12)
    clock.advance(days=12)

    assert redeem(db, code).coupon_id


def test_coupon_is_refused_at_a_store_it_does_not_apply_to(db, issue_code):
    code = issue_code(store_ids=["sto_a", "sto_b"])

    refused = refusal(db, code, store_id="sto_c")

    assert isinstance(refused, InvalidArgument) and refused.code == "coupon_not_valid_at_store"
    assert redeem(db, code, store_id="sto_b").store_id == "sto_b"


def test_store_staff_cannot_redeem_at_a_store_that_is_not_theirs(db, issue_code):
    code = issue_code()
    clerk_of_a = Caller("mch_tea", "live", staff_id="stf_a", role="clerk", store_ids=("sto_a",))

    refused = refusal(db, code, caller=clerk_of_a, store_id="sto_b")

    assert isinstance(refused, PermissionDenied) and refused.code == "store_not_permitted"
    assert redeem(db, code, caller=clerk_of_a, store_id="sto_a").operator_id == "stf_a"


def test_coupon_with_a_threshold_needs_the_order_amount(db, issue_code):
    code = issue_code(threshold=20000)

    refused = refusal(db, code, order_amount=0)

    assert isinstance(refused, InvalidArgument) and refused.code == "order_amount_required"


def test_order_below_the_threshold_is_refused_with_the_shortfall(db, issue_code):
    code = issue_code(threshold=20000)

    refused = refusal(db, code, order_amount=15000)

    assert isinstance(refused, Conflict) and refused.code == "coupon_threshold_not_met"
    assert refused.details["shortfall"] == 5000
    assert redeem(db, code, order_amount=20000).order_amount == 20000


def test_checks_apply_in_the_contract_order(db, clock, issue_code):
    expired_elsewhere = issue_code(validity_days=1, store_ids=["sto_x"], threshold=20000)
    not_yet_and_elsewhere = issue_code(starts_after_days=5, store_ids=["sto_x"])
    wrong_store_for_both = issue_code(store_ids=["sto_x"], threshold=20000)
    used = issue_code(validity_days=1)
    redeem(db, used)
    clock.advance(days=2)

    assert refusal(db, used, store_id="sto_z").code == "coupon_already_redeemed"  # before expired
    assert refusal(db, expired_elsewhere, store_id="sto_z").code == "coupon_expired"  # before store
    assert refusal(db, not_yet_and_elsewhere, store_id="sto_z").code == "coupon_not_yet_valid"
    restricted = Caller("mch_tea", "live", staff_id="stf_z", store_ids=("sto_y",))
    assert refusal(db, wrong_store_for_both, caller=restricted, store_id="sto_z").code == \
        "coupon_not_valid_at_store"  # before the caller's own store rule
    assert refusal(db, wrong_store_for_both, caller=restricted, store_id="sto_x").code == \
        "store_not_permitted"  # before the amount


def test_every_refusal_is_recorded_and_changes_nothing_else(db, clock, issue_code, make):
    code = issue_code(threshold=20000, store_ids=["sto_a"])

    results = [refusal(db, code, store_id="sto_b").code,
               refusal(db, code, order_amount=0).code,
               refusal(db, code, order_amount=100).code,
               refusal(db, codes.new_code()).code,
               refusal(db, "not even a code").code,
               refusal(db, code, store_id="").code,
               refusal(db, code, order_amount=-5).code]

    assert [row.result for row in attempts(db, make)] == results == [
        "coupon_not_valid_at_store", "order_amount_required", "coupon_threshold_not_met", "coupon_not_found",
        "coupon_not_found", "store_id_required", "invalid_order_amount"]
    assert make.rows(db, t.coupons)[0].status == "issued"
    assert make.count(db, t.redemptions) == 0
    assert make.outbox(db, make.REDEEMED_TOPIC) == []


def test_another_merchants_code_is_not_found_and_stays_usable_by_its_owner(db, issue_code):
    rivals_code = issue_code(merchant_id="mch_rival")

    refused = refusal(db, rivals_code)  # the clerk of mch_tea

    assert refused.code == "coupon_not_found"
    assert redeem(db, rivals_code, caller=Caller("mch_rival", "live", staff_id="stf_r")).coupon_id


def test_test_mode_and_live_mode_codes_are_separate_worlds(db, issue_code):
    test_code = issue_code(mode="test")
    live_code = issue_code(mode="live")
    test_clerk = Caller("mch_tea", "test", staff_id="stf_clerk")

    assert refusal(db, test_code, caller=CLERK).code == "coupon_not_found"
    assert refusal(db, live_code, caller=test_clerk).code == "coupon_not_found"
    assert redeem(db, test_code, caller=test_clerk).coupon_id
    assert redeem(db, live_code, caller=CLERK).coupon_id


def test_counters_racing_on_one_code_redeem_it_once_on_sqlite_too(db, issue_code, make):
    code = issue_code()
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def counter(i: int) -> None:
        barrier.wait()
        try:
            redeem(db, code, store_id=f"sto_{i}")
            outcomes.append("ok")
        except DomainError as refused:
            outcomes.append(refused.code)

    threads = [threading.Thread(target=counter, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(outcomes) == ["coupon_already_redeemed"] * 7 + ["ok"]
    assert make.count(db, t.redemptions) == 1
    assert len(make.outbox(db, make.REDEEMED_TOPIC)) == 1
    assert make.count(db, t.redemption_attempts) == 8
