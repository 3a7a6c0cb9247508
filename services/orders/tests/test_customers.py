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
