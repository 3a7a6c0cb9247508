"""Crash safety of CreateOrder: a retry resumes an order left `creating`; the sweeper abandons stuck ones."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from weika.events.v1 import orders_pb2 as events
from weika_kit.errors import RemoteError
from weika_orders.domain.errors import OrderCreationFailed
from weika_orders.domain.model import Amounts, NewOrder
from weika_orders.service_layer import services
from weika_orders.service_layer.sweeper import STUCK_AFTER, sweep_once

CREATED = "weika.orders.order-created.v1"


def _new_order(key: str, fingerprint: str) -> NewOrder:
    return NewOrder.parse(idempotency_key=key, request_fingerprint=fingerprint, external_id="VIP-1",
                          phone="13800000000", birth_year=1991, region="CN-SH", items=[("prd_coupon", 2)],
                          store_id="", current_year=2025)


def test_a_retry_resumes_an_order_whose_creator_died_after_inserting_it(harness, callers):
    # The first attempt got through step 1 and died: the order exists as `creating`, nothing reserved.
    ticket = services.begin_order_creation(harness.db, callers.test, _new_order("idem-crash", "fp-1"))
    assert ticket.status == "creating" and harness.catalog.stock_taken == {}
    assert harness.get(ticket.order_id).status == "creating"

    resumed = harness.create(key="idem-crash", fingerprint="fp-1")

    assert resumed.id == ticket.order_id and resumed.status == "pending_payment"
    assert harness.catalog.stock_taken == {ticket.order_id: 1}
    assert len(harness.outbox(CREATED, events.OrderCreated)) == 1


def test_a_retry_after_an_unanswered_quote_resumes_with_the_same_reservation(harness):
    harness.marketing.next_answers.append(grpc.StatusCode.UNAVAILABLE)

    with pytest.raises(RemoteError) as unavailable:
        harness.create(key="idem-q")
    assert unavailable.value.status == grpc.StatusCode.UNAVAILABLE  # the upstream's status, preserved
    assert unavailable.value.details["service"] == "marketing" and "retry" in unavailable.value.message
    [stuck] = harness.rows("orders")
    assert stuck.status == "creating"

    resumed = harness.create(key="idem-q")

    assert resumed.id == stuck.id and resumed.status == "pending_payment"
    assert len(harness.catalog.callers) == 2 and harness.catalog.stock_taken == {stuck.id: 1}


def test_a_catalog_timeout_keeps_the_order_for_a_retry_instead_of_forgetting_it(harness):
    harness.catalog.fail_next.append(grpc.StatusCode.DEADLINE_EXCEEDED)

    with pytest.raises(RemoteError):
        harness.create(key="idem-t")

    assert harness.rows("orders")[0].status == "creating"
    assert harness.create(key="idem-t").status == "pending_payment"


def test_the_sweeper_fails_orders_stuck_in_creating_and_releases_their_stock(harness):
    harness.marketing.next_answers.append(grpc.StatusCode.UNAVAILABLE)
    with pytest.raises(RemoteError):
        harness.create(key="idem-s", items=(("prd_rare", 1),))
    [stuck] = harness.rows("orders")
    assert harness.catalog.products["prd_rare"].stock == 0

    harness.clock.advance(STUCK_AFTER - timedelta(seconds=5))
    assert sweep_once(harness.db, harness.upstreams.catalog) == 0
    assert harness.rows("orders")[0].status == "creating"

    harness.clock.advance(timedelta(seconds=10))
    assert sweep_once(harness.db, harness.upstreams.catalog) == 1

    [failed] = harness.rows("orders")
    assert failed.status == "failed" and failed.stock_released_at is not None
    assert harness.catalog.products["prd_rare"].stock == 1
    assert [(h.from_status, h.to_status, h.actor, h.reason) for h in harness.rows("order_history")] == \
        [("creating", "failed", "system", "creation_timed_out")]
    with pytest.raises(RemoteError) as refused:
        harness.create(key="idem-s", items=(("prd_rare", 1),))
    assert refused.value.code == "order_creation_failed"
    assert harness.outbox(CREATED, events.OrderCreated) == []


def test_the_sweeper_retries_a_release_the_catalog_did_not_confirm(harness, callers):
    ticket = services.begin_order_creation(harness.db, callers.test, _new_order("idem-r", "fp"))
    harness.clock.advance(STUCK_AFTER + timedelta(seconds=1))
    harness.catalog.release_fails = 1

    sweep_once(harness.db, harness.upstreams.catalog)
    assert harness.rows("orders", id=ticket.order_id)[0].stock_released_at is None

    sweep_once(harness.db, harness.upstreams.catalog)
    assert harness.rows("orders", id=ticket.order_id)[0].stock_released_at is not None
    assert harness.catalog.release_calls == [ticket.order_id]  # the failed attempt was refused before logging


def test_a_slow_creation_that_loses_to_the_sweeper_gives_its_stock_back(harness, callers):
    # The creator reserved, then stalled past the deadline; the sweeper abandoned the order meanwhile.
    ticket = services.begin_order_creation(harness.db, callers.test, _new_order("idem-slow", "fp"))
    lines = harness.upstreams.catalog.reserve_stock(ticket.order_id, (("prd_rare", 1),))
    harness.clock.advance(STUCK_AFTER + timedelta(seconds=1))
    sweep_once(harness.db, harness.upstreams.catalog)
    harness.catalog.released.clear()  # as if the stock had been reserved only after the sweeper's release
    harness.catalog.products["prd_rare"].stock = 0

    quote = harness.upstreams.marketing.quote_price(lines, ticket.customer_id)
    amounts = Amounts.from_quote(lines, quote)
    with pytest.raises(OrderCreationFailed):
        services.complete_order_creation(harness.db, harness.upstreams, callers.test, ticket.order_id, lines,
                                         amounts, list(quote.discounts))

    assert harness.rows("orders", id=ticket.order_id)[0].status == "failed"
    assert harness.catalog.products["prd_rare"].stock == 1
    assert harness.outbox(CREATED, events.OrderCreated) == []
