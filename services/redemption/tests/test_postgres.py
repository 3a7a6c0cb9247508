"""On PostgreSQL: fifty counters scan one code in the same instant, and two consumers issue one order at once."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from weika_kit import context
from weika_kit.context import Caller
from weika_kit.db import Database
from weika_kit.errors import DomainError
from weika_kit.migrations import upgrade
from weika_redemption.adapters import tables as t
from weika_redemption.bootstrap import MIGRATIONS
from weika_redemption.service_layer import services

pytestmark = pytest.mark.postgres

COUNTERS = 50
OWNER = Caller("mch_tea", "live", staff_id="stf_owner", role="owner")


@pytest.fixture
def pg(fresh_postgres_database, clock):
    url = fresh_postgres_database("redemption")
    upgrade(url, MIGRATIONS)
    database = Database(url, service="redemption", pool_size=COUNTERS // 2, clock=clock)
    yield database
    database.dispose()


def run_together(count: int, work) -> list:
    """Start `count` threads that each call work(i) at the same instant; their results (or errors) in order."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_fifty_counters_redeeming_one_code_at_once_redeem_it_exactly_once(pg, consumer_for, make):
    paid = make.order_paid(make.coupon_line())
    assert consumer_for(pg).process(make.bus_message(paid)) == "applied"
    [code] = make.codes_of(pg, OWNER, paid.order_id)

    def counter(i: int):
        clerk = Caller("mch_tea", "live", staff_id=f"stf_{i}", role="clerk")
        with context.bound(caller=clerk):
            return services.redeem_coupon(pg, clerk, services.RedeemRequest(code, f"sto_{i % 5}", 0, f"till-{i}"))

    results = run_together(COUNTERS, counter)

    unexpected = [r for r in results if isinstance(r, Exception) and not isinstance(r, DomainError)]
    assert unexpected == []
    outcomes = Counter("ok" if isinstance(r, services.Redemption) else r.code for r in results)
    assert outcomes == {"ok": 1, "coupon_already_redeemed": COUNTERS - 1}
    [winner] = [r for r in results if isinstance(r, services.Redemption)]
    [redemption] = make.rows(pg, t.redemptions)
    assert redemption.id == winner.id
    [(published, _)] = make.outbox(pg, make.REDEEMED_TOPIC)
    assert (published.redemption_id, published.operator_id) == (winner.id, winner.operator_id)
    recorded = make.rows(pg, t.redemption_attempts)
    assert len(recorded) == COUNTERS
    assert Counter(row.result for row in recorded) == {"ok": 1, "coupon_already_redeemed": COUNTERS - 1}
    [coupon] = make.rows(pg, t.coupons)
    assert (coupon.status, coupon.redeemed_by) == ("redeemed", winner.operator_id)


def test_two_consumers_issuing_the_same_order_at_once_issue_each_unit_once(pg, consumer_for, make):
    paid = make.order_paid(make.coupon_line(quantity=3), make.coupon_line("prd_tea_set", quantity=2))
    consumers = [consumer_for(pg), consumer_for(pg)]

    outcomes = run_together(2, lambda i: consumers[i].process(make.bus_message(paid, event_id=f"evt-{i}")))

    assert outcomes == ["applied", "applied"]
    assert make.count(pg, t.coupons) == 5
    assert len(make.outbox(pg, make.ISSUED_TOPIC)) == 5
