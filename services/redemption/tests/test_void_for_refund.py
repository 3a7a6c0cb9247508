"""Voiding an order's coupons for a refund: all or nothing, refused naming a redeemed coupon, idempotent per
refund, expired ones only when the merchant's rule allows."""

from __future__ import annotations

import pytest

from weika_kit.context import Caller
from weika_kit.errors import DomainError
from weika_redemption.adapters import tables as t
from weika_redemption.service_layer import services

OWNER = Caller("mch_tea", "live", staff_id="key_1", role="owner")
VOIDED_TOPIC = "weika.redemption.coupon-voided.v1"


def void(db, order_id, quantity=1, *, refund_id="rfd_1", allow_expired=False, product_id="prd_voucher50"):
    return services.void_order_coupons(db, OWNER, order_id, refund_id, [(product_id, quantity)], allow_expired)


def statuses(db, make, order_id):
    return sorted(r.status for r in make.rows(db, t.coupons) if r.order_id == order_id)


def test_a_partial_refund_voids_that_many_unredeemed_coupons_and_publishes_coupon_voided(db, pay, make):
    paid = pay(make.coupon_line(quantity=3))

    voided = void(db, paid.order_id, 2)

    assert len(voided) == 2
    assert statuses(db, make, paid.order_id) == ["issued", "voided", "voided"]
    assert sorted(e.coupon_id for e, _ in make.outbox(db, VOIDED_TOPIC)) == sorted(voided)


def test_the_same_refund_again_voids_nothing_more(db, pay, make):
    paid = pay(make.coupon_line(quantity=3))
    first = void(db, paid.order_id, 1)

    again = void(db, paid.order_id, 1)

    assert again == first and statuses(db, make, paid.order_id) == ["issued", "issued", "voided"]


def test_a_refund_needing_a_redeemed_coupon_is_refused_naming_it_and_voids_nothing(db, pay, make):
    paid = pay(make.coupon_line(quantity=2, threshold=0))
    [first, _] = make.codes_of(db, OWNER, paid.order_id)
    redeemed = services.redeem_coupon(db, OWNER, services.RedeemRequest(first, "sto_a", 0, "till-1"))

    with pytest.raises(DomainError) as refused:
        void(db, paid.order_id, 2)

    assert refused.value.code == "coupon_already_redeemed"
    assert refused.value.details["coupon_id"] == redeemed.coupon_id
    assert statuses(db, make, paid.order_id) == ["issued", "redeemed"]


def test_expired_coupons_are_voided_only_when_the_rule_allows(db, clock, pay, make):
    paid = pay(make.coupon_line(quantity=1))
    clock.advance(days=400)

    with pytest.raises(DomainError) as refused:
        void(db, paid.order_id, 1)
    allowed = void(db, paid.order_id, 1, refund_id="rfd_2", allow_expired=True)

    assert refused.value.code == "coupon_expired" and len(allowed) == 1


def test_coupons_not_issued_yet_refuse_the_void_so_the_refund_retries(db, make):
    with pytest.raises(DomainError) as refused:
        void(db, "ord_unknown", 1)

    assert refused.value.code == "coupons_not_issued_yet"


def refunded_message(paid, quantity: int, refund_id: str):  # type: ignore[no-untyped-def]
    import uuid
    from datetime import UTC, datetime

    from weika.events.v1 import orders_pb2
    from weika_kit.bus import Message
    from weika_kit.envelope import Envelope

    topic = "weika.orders.order-refunded.v1"
    line = paid.lines[0]
    payload = orders_pb2.OrderRefunded(
        order_id=paid.order_id, merchant_id=paid.merchant_id, mode=paid.mode, refund_id=refund_id,
        lines=[orders_pb2.OrderLine(product_id=line.product_id, product_kind="coupon", quantity=quantity)])
    envelope = Envelope(id=str(uuid.uuid4()), source="/weika/orders", type=topic, time=datetime.now(UTC),
                        subject=paid.order_id, merchant_id=paid.merchant_id, mode=paid.mode)
    return Message(topic, 0, 0, paid.order_id.encode(), payload.SerializeToString(), envelope.headers())


def test_order_refunded_voids_the_refunded_units_once_even_redelivered(db, pay, make, consumer):
    paid = pay(make.coupon_line(quantity=3))

    assert consumer.process(refunded_message(paid, 2, "rfd_evt")) == "applied"
    assert consumer.process(refunded_message(paid, 2, "rfd_evt")) == "applied"  # republished: a new event id

    assert statuses(db, make, paid.order_id) == ["issued", "voided", "voided"]
    assert len(make.outbox(db, VOIDED_TOPIC)) == 2


def test_order_refunded_after_the_rpc_void_changes_nothing(db, pay, make, consumer):
    paid = pay(make.coupon_line(quantity=2))
    void(db, paid.order_id, 1, refund_id="rfd_rpc")

    assert consumer.process(refunded_message(paid, 1, "rfd_rpc")) == "applied"

    assert statuses(db, make, paid.order_id) == ["issued", "voided"]
    assert len(make.outbox(db, VOIDED_TOPIC)) == 1
