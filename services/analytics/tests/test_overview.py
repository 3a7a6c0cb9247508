"""The overview report: exact counts over facts fed through the real consumer, reproducible whatever the order."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from sqlalchemy import func, select

from weika.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from weika.events.v1 import orders_pb2
from weika_analytics import metrics
from weika_analytics.adapters import tables as t
from weika_analytics.bootstrap import registrations
from weika_analytics.domain.errors import InvalidWindow
from weika_kit.context import Caller
from weika_kit.errors import RemoteError
from weika_kit.grpc_server import GrpcServer
from weika_kit.protos import to_timestamp

T0 = datetime(2025, 6, 18, tzinfo=UTC)
H = timedelta(hours=1)
OTHER = "mch_analytics_other"


def history(ev) -> list:
    """A small day of business for two merchants and both modes, with refunds, reversals and voids."""
    return [
        ev.order_paid("ord_1", 10000, T0 + 1 * H),
        ev.order_paid("ord_2", 5000, T0 + 2 * H),
        ev.order_paid("ord_3", 2990, T0 + 30 * H),
        ev.order_paid("ord_1", 777, T0, merchant_id=OTHER),  # the same order id at another merchant
        ev.order_paid("ord_9", 1234, T0 + 1 * H, mode="test"),
        *(ev.coupon_issued(f"cpn_{i}", T0 + i * H) for i in range(1, 5)),
        ev.coupon_issued("cpn_5", T0 + 30 * H),
        ev.coupon_issued("cpn_o", T0, merchant_id=OTHER),
        ev.coupon_redeemed("rdm_1", "cpn_1", T0 + 5 * H),
        ev.coupon_redeemed("rdm_2", "cpn_2", T0 + 6 * H),
        ev.coupon_redeemed("rdm_3", "cpn_3", T0 + 31 * H),
        ev.coupon_redeemed("rdm_t", "cpn_t", T0 + 6 * H, mode="test"),
        ev.order_refunded("rfd_1", "ord_2", 2500, T0 + 7 * H),
        ev.coupon_reversed("rdm_2", "cpn_2", T0 + 8 * H),
        ev.coupon_voided("cpn_4", T0 + 9 * H),
    ]


def as_tuple(overview) -> tuple:
    return (overview.orders_paid, overview.gmv, overview.coupons_issued, overview.coupons_redeemed,
            overview.redemption_rate, overview.refunds, overview.refunded_amount, overview.redemptions_reversed,
            overview.coupons_voided)


def test_overview_counts_paid_orders_gmv_issued_and_redeemed_coupons(harness, ev):
    harness.apply(*history(ev))

    day_one = harness.overview(T0, T0 + 24 * H)

    assert (day_one.orders_paid, day_one.gmv) == (2, 15000)
    assert (day_one.coupons_issued, day_one.coupons_redeemed) == (4, 2)
    assert day_one.redemption_rate == 0.5
    everything = harness.overview()
    assert (everything.orders_paid, everything.gmv, everything.coupons_issued, everything.coupons_redeemed) == \
        (3, 17990, 5, 3)


def test_refunds_reversals_and_voids_are_counted_separately_and_change_no_core_count(harness, ev):
    before = [m for m in history(ev) if "refunded" not in m.topic and "reversed" not in m.topic
              and "voided" not in m.topic]
    harness.apply(*before)
    core_before = as_tuple(harness.overview())[:5]

    harness.apply(ev.order_refunded("rfd_1", "ord_2", 2500, T0 + 7 * H),
                  ev.order_refunded("rfd_2", "ord_2", 1000, T0 + 8 * H),
                  ev.coupon_reversed("rdm_2", "cpn_2", T0 + 8 * H),
                  ev.coupon_voided("cpn_4", T0 + 9 * H))

    after = harness.overview()
    assert as_tuple(after)[:5] == core_before
    assert (after.refunds, after.refunded_amount, after.redemptions_reversed, after.coupons_voided) == (2, 3500, 1, 1)


def test_redelivered_event_and_republished_copy_with_new_id_count_once(harness, ev):
    paid = ev.order_paid("ord_1", 10000, T0)
    recorded_before = metrics.FACTS.labels("paid_order", "duplicate")._value.get()

    outcomes = harness.apply(paid, paid, ev.republished(paid), ev.order_paid("ord_1", 10000, T0))

    # The inbox catches the redelivery; the natural key catches the copies under new event ids.
    assert outcomes == ["applied", "duplicate", "applied", "applied"]
    overview = harness.overview()
    assert (overview.orders_paid, overview.gmv) == (1, 10000)
    with harness.db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.paid_order_lines)).scalar_one() == 1
    assert metrics.FACTS.labels("paid_order", "duplicate")._value.get() == recorded_before + 2


def test_same_events_in_another_order_with_duplicates_rebuild_the_same_overview(make_harness, ev):
    events = history(ev)
    in_order, replayed = make_harness(), make_harness()
    in_order.apply(*events)
    rng = random.Random(618)
    noisy = events + rng.sample(events, 8) + [ev.republished(m) for m in rng.sample(events, 8)]
    rng.shuffle(noisy)

    replayed.apply(*noisy)

    windows = [(None, None), (T0, T0 + 24 * H), (T0 + 2 * H, T0 + 31 * H), (T0 + 31 * H, None), (None, T0 + H)]
    for merchant_id, mode in [(ev.merchant_id, "live"), (ev.merchant_id, "test"), (OTHER, "live")]:
        for start, end in windows:
            assert as_tuple(replayed.overview(start, end, merchant_id=merchant_id, mode=mode)) == \
                as_tuple(in_order.overview(start, end, merchant_id=merchant_id, mode=mode))
    assert as_tuple(replayed.overview()) == (3, 17990, 5, 3, 0.6, 1, 2500, 1, 1)


def test_window_is_half_open_on_business_time_not_arrival_time(harness, ev):
    harness.apply(ev.order_paid("ord_start", 100, T0), ev.order_paid("ord_end", 10, T0 + H),
                  ev.coupon_issued("cpn_start", T0), ev.coupon_issued("cpn_end", T0 + H),
                  ev.coupon_redeemed("rdm_start", "cpn_start", T0), ev.coupon_redeemed("rdm_end", "cpn_end", T0 + H))

    hour = harness.overview(T0, T0 + H)

    assert as_tuple(hour)[:5] == (1, 100, 1, 1, 1.0)
    assert harness.overview(start=T0 + H).gmv == 10
    assert harness.overview(end=T0).orders_paid == 0


def test_redemption_rate_is_zero_when_no_coupon_was_issued_in_the_window(harness, ev):
    harness.apply(ev.coupon_issued("cpn_1", T0), ev.coupon_redeemed("rdm_1", "cpn_1", T0 + 25 * H))

    next_day = harness.overview(T0 + 24 * H, T0 + 48 * H)

    assert (next_day.coupons_issued, next_day.coupons_redeemed, next_day.redemption_rate) == (0, 1, 0.0)
    assert as_tuple(harness.overview(T0 - 48 * H, T0 - 24 * H)) == (0, 0, 0, 0, 0.0, 0, 0, 0, 0)


def test_merchant_never_sees_another_merchants_or_other_modes_facts(harness, ev):
    harness.apply(ev.order_paid("ord_a", 100, T0), ev.order_paid("ord_b", 200, T0, merchant_id=OTHER),
                  ev.order_paid("ord_t", 400, T0, mode="test"), ev.coupon_issued("cpn_t", T0, mode="test"))

    assert harness.overview().gmv == 100
    assert harness.overview(merchant_id=OTHER).gmv == 200
    assert (harness.overview(mode="test").gmv, harness.overview(mode="test").coupons_issued) == (400, 1)
    assert harness.overview(merchant_id=OTHER, mode="test").orders_paid == 0


def test_window_ending_at_or_before_its_start_is_refused(harness):
    with pytest.raises(InvalidWindow) as refused:
        harness.overview(T0, T0)
    assert refused.value.code == "invalid_window"


def test_event_whose_payload_names_another_tenant_than_its_envelope_is_dead_lettered(harness, ev):
    smuggled = ev.order_paid("ord_x", 999, T0, merchant_id=OTHER, envelope_merchant_id=ev.merchant_id)

    assert harness.apply(smuggled) == ["dead_lettered"]
    assert harness.overview().orders_paid == harness.overview(merchant_id=OTHER).orders_paid == 0


def test_event_without_its_business_time_is_dead_lettered_not_guessed(harness, ev):
    undated = ev.message(orders_pb2.OrderPaid(order_id="ord_x", merchant_id=ev.merchant_id, mode="live",
                                              paid_amount=500))

    assert harness.apply(undated) == ["dead_lettered"]
    dead = harness.consumer.bus.log["weika.orders.order-paid.v1.dlq"][0]
    assert dead.header("x-weika-dlq-error").startswith(b"MalformedEvent: paid_order ord_x has no paid_at")


def test_get_overview_over_grpc_answers_for_the_caller_only(harness, ev):
    harness.apply(*history(ev))
    server = GrpcServer("analytics", "127.0.0.1:0", registrations(harness.db), [], max_workers=2)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    stub = analytics_pb2_grpc.AnalyticsServiceStub(channel)
    try:
        day = stub.GetOverview(
            analytics_pb2.GetOverviewRequest(start_time=to_timestamp(T0), end_time=to_timestamp(T0 + 24 * H)),
            metadata=Caller(ev.merchant_id, "live").to_metadata())
        other = stub.GetOverview(analytics_pb2.GetOverviewRequest(), metadata=Caller(OTHER, "live").to_metadata())
        with pytest.raises(grpc.RpcError) as anonymous:
            stub.GetOverview(analytics_pb2.GetOverviewRequest())
        with pytest.raises(grpc.RpcError) as backwards:
            stub.GetOverview(analytics_pb2.GetOverviewRequest(start_time=to_timestamp(T0 + H),
                                                              end_time=to_timestamp(T0)),
                             metadata=Caller(ev.merchant_id, "live").to_metadata())
    finally:
        channel.close()
        server.stop(0)

    assert (day.orders_paid, day.gmv, day.coupons_issued, day.coupons_redeemed, day.redemption_rate) == \
        (2, 15000, 4, 2, 0.5)
    assert (day.refunds, day.refunded_amount, day.redemptions_reversed, day.coupons_voided) == (1, 2500, 1, 1)
    assert (other.orders_paid, other.gmv, other.coupons_issued) == (1, 777, 1)
    assert RemoteError.from_rpc_error(anonymous.value).code == "caller_required"
    refused = RemoteError.from_rpc_error(backwards.value)
    assert (refused.status, refused.code) == (grpc.StatusCode.INVALID_ARGUMENT, "invalid_window")
