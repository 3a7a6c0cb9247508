"""On PostgreSQL: the last two coupons of an order handled at the same moment by two replicas still move the
order to delivered (the second waits for the first and counts both), exactly once."""

from __future__ import annotations

import threading
import time

import pytest

from weika_kit import context
from weika_kit.context import Caller
from weika_kit.db import Database
from weika_orders.service_layer import delivery

pytestmark = pytest.mark.postgres


def test_the_last_two_coupons_handled_at_once_by_two_replicas_deliver_the_order_once(make_harness,
                                                                                      fresh_postgres_database):
    url = fresh_postgres_database("orders_delivery")
    harness = make_harness(url)
    order = harness.create(items=(("prd_coupon", 2),))
    harness.pay(order.id)
    replica = Database(url, service="orders", clock=harness.clock)
    system = Caller("mch_tea", "test", role="system")
    first_recorded = threading.Event()

    def second_replica() -> None:
        first_recorded.wait(10)
        with context.bound(caller=system), replica.unit_of_work() as uow:
            delivery.coupon_issued(uow, system, order.id, "prd_coupon", "cpn_2")
            uow.commit()

    racer = threading.Thread(target=second_replica)
    racer.start()
    with context.bound(caller=system), harness.db.unit_of_work() as uow:
        delivery.coupon_issued(uow, system, order.id, "prd_coupon", "cpn_1")
        first_recorded.set()
        time.sleep(0.5)  # the other replica runs its handler now, before this one commits
        uow.commit()
    racer.join(10)
    replica.engine.dispose()

    assert harness.get(order.id).status == "delivered"
    assert [h.to_status for h in harness.rows("order_history", order_id=order.id)].count("delivered") == 1
