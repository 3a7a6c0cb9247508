"""CreateOrder over gRPC: idempotency, upstream refusals, pricing, validation, customers and tenancy."""

from __future__ import annotations

import grpc
import pytest

from weika.events.v1 import orders_pb2 as events
from weika.marketing.v1 import marketing_pb2
from weika_kit.errors import InvalidArgument, RemoteError

CREATED = "weika.orders.order-created.v1"


def test_same_key_and_body_returns_the_same_order_and_reserves_stock_once(harness):
    first = harness.create(key="idem-a")
    again = harness.create(key="idem-a")

    assert again.id == first.id and again.status == "pending_payment"
    assert harness.count("orders") == 1
    assert harness.catalog.stock_taken == {first.id: 1}
    assert len(harness.outbox(CREATED, events.OrderCreated)) == 1


def test_same_key_with_a_different_body_is_refused_as_idempotency_key_reused(harness):
    first = harness.create(key="idem-a", items=(("prd_coupon", 2),))

    with pytest.raises(RemoteError) as refused:
        harness.create(key="idem-a", items=(("prd_coupon", 3),))

    assert refused.value.code == "idempotency_key_reused"
    assert refused.value.status == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details["order_id"] == first.id
    assert harness.catalog.stock_taken == {first.id: 1}


def test_without_a_fingerprint_a_reused_key_with_another_body_is_still_caught(harness):
    harness.create(key="idem-a", items=(("prd_coupon", 2),), fingerprint="")
    assert harness.create(key="idem-a", items=(("prd_coupon", 2),), fingerprint="").status == "pending_payment"

    with pytest.raises(RemoteError) as refused:
        harness.create(key="idem-a", items=(("prd_tea", 2),), fingerprint="")

    assert refused.value.code == "idempotency_key_reused"


def test_the_same_key_in_another_mode_or_merchant_places_a_separate_order(harness, callers):
    ids = {harness.create(caller, key="idem-a").id for caller in (callers.test, callers.live, callers.other_merchant)}

    assert len(ids) == 3


def test_out_of_stock_propagates_its_code_and_status_and_leaves_no_order(harness):
    with pytest.raises(RemoteError) as refused:
        harness.create(key="idem-rare", items=(("prd_rare", 2),))

    assert refused.value.code == "out_of_stock"
    assert refused.value.status == grpc.StatusCode.FAILED_PRECONDITION
    assert refused.value.details == {"product_id": "prd_rare", "available": "1", "requested": "2"}
    assert "out of stock" in refused.value.message
    assert harness.count("orders") == 0
    assert harness.outbox(CREATED, events.OrderCreated) == []

    harness.catalog.products["prd_rare"].stock = 5  # restocked: the same key may be used again
    assert harness.create(key="idem-rare", items=(("prd_rare", 2),)).status == "pending_payment"


def test_unknown_product_comes_back_as_product_not_found(harness):
    with pytest.raises(RemoteError) as refused:
        harness.create(items=(("prd_nope", 1),))

    assert (refused.value.code, refused.value.status) == ("product_not_found", grpc.StatusCode.NOT_FOUND)
    assert harness.count("orders") == 0


def test_a_refused_quote_gives_the_stock_back_and_leaves_no_order(harness):
    harness.marketing.next_answers.append(
        InvalidArgument("these campaigns cannot combine", code="campaigns_not_stackable"))

    with pytest.raises(RemoteError) as refused:
        harness.create(key="idem-q", items=(("prd_rare", 1),))

    assert (refused.value.code, refused.value.status) == ("campaigns_not_stackable",
                                                          grpc.StatusCode.INVALID_ARGUMENT)
    assert harness.catalog.products["prd_rare"].stock == 1
    assert harness.count("orders") == 0


def test_lines_prices_coupon_terms_and_discount_come_from_catalog_and_marketing(harness):
    order = harness.create(items=(("prd_coupon", 2), ("prd_tea", 1), ("prd_coupon", 1)))

    lines = {line.product_id: line for line in order.lines}
    assert (lines["prd_coupon"].quantity, lines["prd_coupon"].unit_price, lines["prd_coupon"].line_amount) == \
        (3, 4500, 13500)
    assert lines["prd_coupon"].coupon.face_value == 5000
    assert list(lines["prd_coupon"].coupon.store_ids) == ["sto_1", "sto_2"]
    assert lines["prd_coupon"].coupon.validity_mode == "fixed"
    assert not lines["prd_tea"].HasField("coupon")
    assert (order.total_amount, order.discount_amount, order.payable_amount, order.paid_amount) == \
        (25500, 5000, 20500, 0)
    assert [(d.rule_id, d.amount) for d in order.discounts] == [("cmp_618", 5000)]
    assert [q.customer_id for q in harness.marketing.requests] == [order.customer.customer_id]

    created = harness.outbox(CREATED, events.OrderCreated)
    assert len(created) == 1 and created[0].order_id == order.id
    assert (created[0].total_amount, created[0].discount_amount, created[0].payable_amount) == (25500, 5000, 20500)
    assert harness.rows("order_history", order_id=order.id)[0].to_status == "pending_payment"


def test_a_quote_that_does_not_add_up_is_refused_and_charges_nothing(harness):
    harness.marketing.next_answers.append(marketing_pb2.Quote(subtotal=1, discount_amount=0, total=1))

    with pytest.raises(RemoteError) as refused:
        harness.create(items=(("prd_rare", 1),))

    assert (refused.value.code, refused.value.status) == ("price_quote_inconsistent", grpc.StatusCode.INTERNAL)
    assert harness.count("orders") == 0 and harness.catalog.products["prd_rare"].stock == 1


def test_phone_is_stored_encrypted_and_shown_masked(harness):
    order = harness.create(phone="138-0000-1234")

    assert order.customer.phone_masked == "138****1234"
    stored = harness.rows("customers")[0].phone_encrypted
    assert "1234" not in stored and "138" not in stored
    assert harness.get(order.id).customer.phone_masked == "138****1234"


def test_a_returning_customer_is_the_same_customer_with_updated_details(harness):
    first = harness.create(key="k1", external_id="VIP-7", region="CN-SH")
    second = harness.create(key="k2", external_id="VIP-7", region="CN-BJ", phone="")

    assert second.customer.customer_id == first.customer.customer_id
    assert second.customer.region == "CN-BJ"
    assert second.customer.phone_masked == "138****0000"  # an empty phone keeps the known one
    assert harness.count("customers") == 1


@pytest.mark.parametrize(("overrides", "code"), [
    ({"key": ""}, "idempotency_key_required"),
    ({"items": ()}, "empty_order"),
    ({"items": (("prd_tea", 0),)}, "invalid_quantity"),
    ({"items": (("prd_tea", 1000),)}, "invalid_quantity"),
    ({"items": (("prd_tea", 600), ("prd_tea", 600))}, "invalid_quantity"),
    ({"items": (("", 1),)}, "invalid_order_request"),
    ({"external_id": ""}, "invalid_customer"),
    ({"external_id": "x" * 65}, "invalid_customer"),
    ({"birth_year": 1850}, "invalid_birth_year"),
    ({"birth_year": 3000}, "invalid_birth_year"),
    ({"phone": "138abc"}, "invalid_phone"),
    ({"region": "Shanghai, China"}, "invalid_customer"),
])
def test_bad_requests_are_refused_with_a_stable_code_before_anything_is_reserved(harness, overrides, code):
    with pytest.raises(RemoteError) as refused:
        harness.create(**overrides)

    assert (refused.value.code, refused.value.status) == (code, grpc.StatusCode.INVALID_ARGUMENT)
    assert harness.catalog.callers == [] and harness.count("orders") == 0


def test_the_caller_travels_to_the_catalog(harness, callers):
    harness.create(callers.live)

    assert harness.catalog.callers[0].merchant_id == "mch_tea"
    assert harness.catalog.callers[0].mode == "live"


def test_a_store_clerk_cannot_order_for_another_store(harness, callers):
    with pytest.raises(RemoteError) as refused:
        harness.create(callers.clerk_elsewhere, store_id="sto_1")

    assert (refused.value.code, refused.value.status) == ("store_not_allowed", grpc.StatusCode.PERMISSION_DENIED)


def test_another_merchant_or_mode_gets_order_not_found(harness, callers):
    order = harness.create(callers.test)

    attempts = [(harness.get, callers.other_merchant), (harness.get, callers.live),
                (harness.cancel, callers.other_merchant), (harness.cancel, callers.live),
                (harness.pay, callers.other_merchant)]
    for attempt, stranger in attempts:
        with pytest.raises(RemoteError) as refused:
            attempt(order.id, stranger)
        assert (refused.value.code, refused.value.status) == ("order_not_found", grpc.StatusCode.NOT_FOUND)
    assert harness.get(order.id, callers.test).status == "pending_payment"
