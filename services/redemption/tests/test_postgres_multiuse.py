"""On PostgreSQL: a five-use coupon under forty counters at once, and one redemption reversed by two clerks at once."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from weika_kit.context import Caller
from weika_kit.db import Database
from weika_kit.errors import DomainError
from weika_kit.migrations import upgrade
from weika_redemption.adapters import tables as t
from weika_redemption.bootstrap import MIGRATIONS
from weika_redemption.service_layer import services

pytestmark = pytest.mark.postgres

COUNTERS = 40
OWNER = Caller("mch_tea", "live", staff_id="stf_owner", role="owner")


@pytest.fixture
def pg(fresh_postgres_database, clock):
    url = fresh_postgres_database("redemption_multi")
    upgrade(url, MIGRATIONS)
    database = Database(url, service="redemption", pool_size=COUNTERS // 2, clock=clock)
    yield database
    database.dispose()


def together(count: int, work) -> list:
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # the refusals are the point
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def outcome(results: list) -> Counter:
    return Counter("ok" if not isinstance(r, Exception) else getattr(r, "code", repr(r)) for r in results)


def test_a_five_use_coupon_under_forty_concurrent_counters_is_redeemed_exactly_five_times(pg, consumer_for, make):
    paid = make.order_paid(make.coupon_line(max_uses=5))
    assert consumer_for(pg).process(make.bus_message(paid)) == "applied"
    [code] = make.codes_of(pg, OWNER, paid.order_id)

    results = together(COUNTERS, lambda i: services.redeem_coupon(
        pg, Caller("mch_tea", "live", staff_id=f"stf_{i}"), services.RedeemRequest(code, "sto_a", 0, f"till-{i}")))

    assert outcome(results) == Counter({"ok": 5, "coupon_already_redeemed": COUNTERS - 5})
    assert all(isinstance(r, DomainError) for r in results if isinstance(r, Exception))
    [coupon] = make.rows(pg, t.coupons)
    assert (coupon.status, coupon.uses_left) == ("redeemed", 0)
    assert make.count(pg, t.redemptions) == 5
    assert make.count(pg, t.redemption_attempts) == COUNTERS


def test_one_redemption_reversed_by_two_clerks_at_once_gives_back_one_use(pg, consumer_for, make):
    paid = make.order_paid(make.coupon_line(max_uses=2))
    assert consumer_for(pg).process(make.bus_message(paid)) == "applied"
    [code] = make.codes_of(pg, OWNER, paid.order_id)
    first = services.redeem_coupon(pg, OWNER, services.RedeemRequest(code, "sto_a", 0, ""))
    services.redeem_coupon(pg, OWNER, services.RedeemRequest(code, "sto_a", 0, ""))

    results = together(8, lambda i: services.reverse_redemption(pg, OWNER, first.id, f"mistake {i}"))

    assert outcome(results) == Counter({"ok": 1, "redemption_already_reversed": 7})
    [coupon] = make.rows(pg, t.coupons)
    assert (coupon.status, coupon.uses_left) == ("issued", 1)
    assert make.count(pg, t.redemption_reversals) == 1
