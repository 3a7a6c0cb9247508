"""Customers (members): created from orders, listed with their totals and masked phones, shown with their
orders; another merchant's customers do not exist."""

from __future__ import annotations

from datetime import timedelta

import pytest

from weika.orders.v1 import orders_pb2 as pb
from weika_kit.errors import RemoteError


def test_customers_are_listed_newest_first_with_totals_and_masked_phones(harness, callers):
    first = harness.create(key="a", external_id="VIP-1", phone="13800001234", region="CN-SH")
    harness.pay(first.id)
    harness.create(key="b", external_id="VIP-1", phone="13800001234")
    harness.clock.advance(timedelta(minutes=1))
    harness.create(key="c", external_id="VIP-2", phone="", region="CN-BJ")
    harness.create(callers.other_merchant, key="d", external_id="VIP-9")

    listed = harness.call(callers.test, harness.stub.ListCustomers, pb.ListCustomersRequest())

    rows = [(s.customer.external_id, s.customer.phone_masked, s.order_count, s.paid_amount) for s in listed.customers]
    assert rows == [("VIP-2", "", 1, 0), ("VIP-1", "138****1234", 2, first.payable_amount)]
    region = harness.call(callers.test, harness.stub.ListCustomers, pb.ListCustomersRequest(region="CN-BJ"))
    assert [s.customer.external_id for s in region.customers] == ["VIP-2"]


def test_customer_pages_follow_the_cursor(harness, callers):
    for n in range(3):
        harness.create(key=f"k{n}", external_id=f"VIP-{n}")
        harness.clock.advance(timedelta(seconds=1))

    first = harness.call(callers.test, harness.stub.ListCustomers, pb.ListCustomersRequest(page_size=2))
    rest = harness.call(callers.test, harness.stub.ListCustomers,
                        pb.ListCustomersRequest(page_size=2, cursor=first.next_cursor))

    assert [s.customer.external_id for s in [*first.customers, *rest.customers]] == ["VIP-2", "VIP-1", "VIP-0"]
    assert rest.next_cursor == ""


def test_a_customer_is_shown_with_their_orders(harness, callers):
    order = harness.create(external_id="VIP-7", phone="13912345678")

    detail = harness.call(callers.test, harness.stub.GetCustomer,
                          pb.GetCustomerRequest(customer_id=order.customer.customer_id))

    assert detail.summary.customer.phone_masked == "139****5678"
    assert [o.id for o in detail.orders] == [order.id]


def test_another_merchants_customer_does_not_exist(harness, callers):
    order = harness.create()

    with pytest.raises(RemoteError) as refused:
        harness.call(callers.other_merchant, harness.stub.GetCustomer,
                     pb.GetCustomerRequest(customer_id=order.customer.customer_id))

    assert refused.value.code == "customer_not_found"


def test_customer_tags_replace_the_set_show_on_the_customer_and_filter_the_list(harness, callers):
    vip = harness.create(key="a", external_id="VIP-1").customer.customer_id
    harness.create(key="b", external_id="VIP-2")
    other = harness.create(callers.other_merchant, key="c", external_id="VIP-9").customer.customer_id
    harness.call(callers.other_merchant, harness.stub.SetCustomerTags,
                 pb.SetCustomerTagsRequest(customer_id=other, tags=["vip"]))

    harness.call(callers.test, harness.stub.SetCustomerTags,
                 pb.SetCustomerTagsRequest(customer_id=vip, tags=["old"]))
    tagged = harness.call(callers.test, harness.stub.SetCustomerTags,
                          pb.SetCustomerTagsRequest(customer_id=vip, tags=[" vip ", "生日月", "vip"]))

    assert list(tagged.customer.tags) == ["vip", "生日月"]
    shown = harness.call(callers.test, harness.stub.GetCustomer, pb.GetCustomerRequest(customer_id=vip))
    assert list(shown.summary.customer.tags) == ["vip", "生日月"]
    filtered = harness.call(callers.test, harness.stub.ListCustomers, pb.ListCustomersRequest(tag="vip"))
    assert [s.customer.external_id for s in filtered.customers] == ["VIP-1"]
    old = harness.call(callers.test, harness.stub.ListCustomers, pb.ListCustomersRequest(tag="old"))
    assert list(old.customers) == []


@pytest.mark.parametrize("tags, field", [(["x" * 33], "tags[0]"), (["ok", "  "], "tags[1]"),
                                         ([f"t{i}" for i in range(21)], "tags")])
def test_bad_customer_tags_are_refused_naming_the_field(harness, callers, tags, field):
    customer = harness.create(key="a", external_id="VIP-1").customer.customer_id

    with pytest.raises(RemoteError) as refused:
        harness.call(callers.test, harness.stub.SetCustomerTags,
                     pb.SetCustomerTagsRequest(customer_id=customer, tags=tags))

    assert (refused.value.code, refused.value.details.get("field")) == ("invalid_customer_tags", field)


def test_another_merchants_customer_cannot_be_tagged(harness, callers):
    other = harness.create(callers.other_merchant, key="c", external_id="VIP-9").customer.customer_id

    with pytest.raises(RemoteError) as refused:
        harness.call(callers.test, harness.stub.SetCustomerTags,
                     pb.SetCustomerTagsRequest(customer_id=other, tags=["vip"]))

    assert refused.value.code == "customer_not_found"
