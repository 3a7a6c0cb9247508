"""On PostgreSQL: the aggregates are exact and racing consumers with re-sent events still count each fact once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

T0 = datetime(2025, 6, 18, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.mark.postgres
def test_postgres_racing_consumers_with_republished_events_count_each_fact_once(
        fresh_postgres_database, make_harness, ev):
    url = fresh_postgres_database("analytics")
    first, second = make_harness(url), make_harness(url)  # two replicas of the consumer, one database
    originals = [
        *(ev.order_paid(f"ord_{i}", 1000 + i, T0 + i * H) for i in range(20)),
        *(ev.coupon_issued(f"cpn_{i}", T0 + i * H) for i in range(20)),
        *(ev.coupon_redeemed(f"rdm_{i}", f"cpn_{i}", T0 + (i + 1) * H) for i in range(0, 20, 2)),
    ]
    copies = [ev.republished(m) for m in originals]  # the same facts under new event ids
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def feed(harness, messages):
        barrier.wait()
        outcomes.extend(harness.apply(*messages))

    threads = [threading.Thread(target=feed, args=(first, originals)),
               threading.Thread(target=feed, args=(second, copies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    # No transaction aborted on the race (the loser's insert does nothing), so nothing was dead-lettered.
    assert outcomes == ["applied"] * (2 * len(originals))
    overview = first.overview()
    assert (overview.orders_paid, overview.gmv) == (20, sum(1000 + i for i in range(20)))
    assert type(overview.gmv) is int  # PostgreSQL's numeric sum comes back as an integer of fen
    assert (overview.coupons_issued, overview.coupons_redeemed, overview.redemption_rate) == (20, 10, 0.5)
    window = first.overview(T0 + 5 * H, T0 + 10 * H)
    assert (window.orders_paid, window.gmv, window.coupons_issued, window.coupons_redeemed) == \
        (5, 1005 + 1006 + 1007 + 1008 + 1009, 5, 3)  # redeemed at 5h, 7h, 9h
