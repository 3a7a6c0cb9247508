"""Issuing coupons from order-paid: one per unit, validity for both modes, exactly once, codes never in events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from weika_kit.context import Caller
from weika_kit.errors import InvalidArgument
from weika_kit.protos import from_timestamp, to_timestamp
from weika_redemption.adapters import tables as t
from weika_redemption.domain import codes
from weika_redemption.service_layer import services

LIVE = Caller("mch_tea", "live", staff_id="stf_1", role="owner")


def test_each_unit_of_a_coupon_line_gets_its_own_coupon_with_a_distinct_valid_code(db, pay, make):
    paid = pay(make.coupon_line(quantity=3, face_value=5000, threshold=20000, store_ids=["sto_a", "sto_b"]))

    page = services.list_coupons(db, LIVE, paid.order_id)

    assert len(page.coupons) == 3
    issued = [item.code for item in page.coupons]
    assert len(set(issued)) == 3
    for code in issued:
        normalized = codes.normalize(code)
        assert codes.is_valid(normalized)
        assert normalized[16] == codes.check_symbol(normalized[:16])
    assert sorted(item.coupon.unit_index for item in page.coupons) == [0, 1, 2]
    for item in page.coupons:
        c = item.coupon
        assert (c.status, c.order_id, c.product_id, c.customer_id) == ("issued", paid.order_id, "prd_voucher50",
                                                                        "cus_buyer")
        assert (c.face_value, c.threshold, c.store_ids) == (5000, 20000, ("sto_a", "sto_b"))


def test_codes_are_stored_encrypted_and_fingerprinted_never_in_the_clear(db, pay, make):
    paid = pay(make.coupon_line(quantity=2))
    issued = make.codes_of(db, LIVE, paid.order_id)

    stored = make.rows(db, t.coupons)

    for row in stored:
        for code in issued:
            assert code not in row.code_encrypted and codes.normalize(code) not in row.code_encrypted
    assert {row.code_fingerprint for row in stored} == {services.code_fingerprint(code) for code in issued}


def test_relative_validity_counts_from_the_payment_event_time_not_from_when_it_is_processed(db, clock, consumer,
                                                                                            make):
    clock.advance(hours=7)  # the consumer lags behind the payment
    payload = make.order_paid(make.coupon_line(validity_mode="relative", validity_days=30, starts_after_days=2))
    assert consumer.process(make.bus_message(payload, time=make.PAID_AT)) == "applied"

    [item] = services.list_coupons(db, LIVE, payload.order_id).coupons

    assert item.coupon.issued_at == make.PAID_AT
    assert item.coupon.valid_from == make.PAID_AT + timedelta(days=2)
    assert item.coupon.valid_until == make.PAID_AT + timedelta(days=32)


def test_fixed_validity_is_the_window_of_the_terms(db, pay, make):
    starts, ends = datetime(2026, 6, 18, tzinfo=UTC), datetime(2026, 6, 30, 15, 59, 59, tzinfo=UTC)
    paid = pay(make.coupon_line(validity_mode="fixed", validity_days=0, starts_at=to_timestamp(starts),
                                ends_at=to_timestamp(ends)))

    [item] = services.list_coupons(db, LIVE, paid.order_id).coupons

    assert (item.coupon.valid_from, item.coupon.valid_until) == (starts, ends)


def test_one_coupon_issued_event_per_coupon_without_the_code(db, pay, make):
    paid = pay(make.coupon_line(quantity=3, threshold=20000, store_ids=["sto_a"]))
    page = services.list_coupons(db, LIVE, paid.order_id)

    published = make.outbox(db, make.ISSUED_TOPIC)

    assert sorted(event.coupon_id for event, _ in published) == sorted(item.coupon.id for item in page.coupons)
    for event, envelope in published:
        assert (event.merchant_id, event.mode, event.order_id, event.product_id, event.category_id,
                event.customer_id) == ("mch_tea", "live", paid.order_id, "prd_voucher50", "cat_dining", "cus_buyer")
        assert (event.face_value, event.threshold, list(event.store_ids)) == (5000, 20000, ["sto_a"])
        assert from_timestamp(event.issued_at) == make.PAID_AT
        assert from_timestamp(event.valid_until) == make.PAID_AT + timedelta(days=30)
        assert envelope["subject"] == event.coupon_id
        wire = event.SerializeToString() + str(envelope).encode()
        for item in page.coupons:
            assert item.code.encode() not in wire and codes.normalize(item.code).encode() not in wire


def test_lines_that_are_not_coupons_issue_nothing(db, pay, make):
    paid = pay(make.goods_line("physical", 2), make.coupon_line(quantity=2), make.goods_line("virtual", 1))

    assert len(services.list_coupons(db, LIVE, paid.order_id).coupons) == 2
    assert make.count(db, t.coupons) == 2


def test_order_paid_processed_twice_under_different_event_ids_issues_no_extra_coupon(db, consumer, make):
    payload = make.order_paid(make.coupon_line(quantity=3), make.coupon_line("prd_tea_set", quantity=1))

    first = consumer.process(make.bus_message(payload, event_id="evt-original"))
    codes_after_first = make.codes_of(db, LIVE, payload.order_id)
    second = consumer.process(make.bus_message(payload, event_id="evt-republished"))

    assert (first, second) == ("applied", "applied")  # a new event id: the inbox cannot tell it is a replay
    assert make.count(db, t.coupons) == 4
    assert make.codes_of(db, LIVE, payload.order_id) == codes_after_first
    assert len(make.outbox(db, make.ISSUED_TOPIC)) == 4


def test_same_product_on_two_lines_gets_one_coupon_per_unit_and_replays_cleanly(db, consumer, make):
    payload = make.order_paid(make.coupon_line(quantity=2), make.coupon_line(quantity=1))

    outcomes = [consumer.process(make.bus_message(payload)), consumer.process(make.bus_message(payload))]

    assert outcomes == ["applied", "applied"]
    assert make.count(db, t.coupons) == 3
    assert sorted((row.product_id, row.unit_index) for row in make.rows(db, t.coupons)) == [
        ("prd_voucher50", 0), ("prd_voucher50", 1), ("prd_voucher50", 2)]


def test_terms_that_give_no_validity_window_dead_letter_the_event_and_issue_nothing(db, consumer, make):
    payload = make.order_paid(make.coupon_line(quantity=2), make.coupon_line("prd_broken", validity_days=0))

    assert consumer.process(make.bus_message(payload)) == "dead_lettered"
    assert make.count(db, t.coupons) == 0
    assert make.outbox(db, make.ISSUED_TOPIC) == []


def test_payload_of_another_tenant_than_its_envelope_is_dead_lettered(db, consumer, make):
    payload = make.order_paid(make.coupon_line(), merchant_id="mch_other")
    message = make.bus_message(make.order_paid(make.coupon_line(), order_id=payload.order_id))
    forged = type(message)(message.topic, 0, 0, message.key, payload.SerializeToString(), message.headers)

    assert consumer.process(forged) == "dead_lettered"
    assert make.count(db, t.coupons) == 0


def test_another_merchants_or_modes_order_lists_no_coupons(db, pay, make):
    paid = pay(make.coupon_line(quantity=2))

    assert services.list_coupons(db, Caller("mch_rival", "live"), paid.order_id).coupons == []
    assert services.list_coupons(db, Caller("mch_tea", "test"), paid.order_id).coupons == []
    assert len(services.list_coupons(db, Caller("mch_tea", "live"), paid.order_id).coupons) == 2


def test_coupons_are_listed_in_pages_that_cover_each_exactly_once(db, pay, make):
    paid = pay(make.coupon_line("prd_a", quantity=3), make.coupon_line("prd_b", quantity=2))

    seen, token, pages = [], "", 0
    while True:
        page = services.list_coupons(db, LIVE, paid.order_id, page_size=2, page_token=token)
        seen += [item.coupon.id for item in page.coupons]
        pages += 1
        token = page.next_page_token
        if not token:
            break

    assert pages == 3
    assert len(seen) == len(set(seen)) == 5


def test_a_page_token_not_handed_out_by_the_service_is_refused(db):
    with pytest.raises(InvalidArgument) as refused:
        services.list_coupons(db, LIVE, "ord_x", page_token="not-a-token")
    assert refused.value.code == "invalid_page_token"


def test_an_issued_coupon_past_its_validity_is_listed_as_expired(db, clock, pay, make):
    paid = pay(make.coupon_line(validity_days=30))
    clock.advance(days=31)

    [item] = services.list_coupons(db, LIVE, paid.order_id).coupons

    assert item.coupon.status == "issued"
    assert item.coupon.status_at(clock.now) == "expired"
