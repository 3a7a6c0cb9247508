"""Two members applying the same event at the same instant on PostgreSQL: one applies it, the other sees a
duplicate at once (no retry, no failure counted), and the effect exists once."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from weika.events.v1 import catalog_pb2, orders_pb2
from weika_kit import metrics
from weika_kit.consumer import EventConsumer
from weika_kit.db import KIT_METADATA, Database
from weika_kit.outbox import OutboxRelay
from weika_kit.testing import FakeBus

PAID = "weika.orders.order-paid.v1"
METADATA = MetaData()
EFFECTS = Table("race_effects", METADATA, Column("id", Integer, primary_key=True), Column("order_id", String(40)))


@pytest.mark.postgres
def test_the_same_event_applied_twice_at_once_has_one_effect(fresh_postgres_database):
    db = Database(fresh_postgres_database("race"), service="race")
    try:
        KIT_METADATA.create_all(db.engine)
        METADATA.create_all(db.engine)
        bus = FakeBus()
        with db.unit_of_work() as uow:
            uow.add_event(orders_pb2.OrderPaid(order_id="o-1", merchant_id="m-1", mode="live"))
            uow.commit()
        OutboxRelay(db, bus, holder="t").publish_pending()
        [message] = bus.log[PAID]
        barrier = threading.Barrier(2)

        def apply(event, uow):  # type: ignore[no-untyped-def]
            uow.execute(insert(EFFECTS).values(order_id=event.payload.order_id))
            time.sleep(0.3)  # both are inside their transaction before either records the event id

        consumer = EventConsumer(db, bus, group="race", handlers={PAID: apply}, retry_backoff_s=0)
        failures_before = metrics.EVENT_HANDLER_FAILURES.labels("race", PAID)._value.get()
        outcomes: list[str] = []

        def member() -> None:
            barrier.wait()
            outcomes.append(consumer.process(message))

        threads = [threading.Thread(target=member) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        assert sorted(outcomes) == ["applied", "duplicate"]
        assert metrics.EVENT_HANDLER_FAILURES.labels("race", PAID)._value.get() == failures_before
        with db.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(EFFECTS)).scalar_one() == 1
    finally:
        db.dispose()


@pytest.mark.postgres
def test_events_of_one_key_enter_the_outbox_in_commit_order(fresh_postgres_database):
    from weika_kit.db import KIT_TABLES

    db = Database(fresh_postgres_database("order"), service="order")
    try:
        KIT_METADATA.create_all(db.engine)
        first_added, commits = threading.Event(), []

        def first() -> None:
            with db.unit_of_work() as uow:
                uow.add_event(catalog_pb2.StockChanged(product_id="p-1", merchant_id="m-1", mode="live", delta=-1))
                first_added.set()
                time.sleep(0.5)  # a slow transaction holding its event for key o-1
                uow.commit()
                commits.append("first")

        def second() -> None:
            first_added.wait()
            with db.unit_of_work() as uow:
                uow.add_event(catalog_pb2.StockChanged(product_id="p-1", merchant_id="m-1", mode="live", delta=-2))
                uow.commit()
                commits.append("second")

        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        outbox = KIT_TABLES["outbox"]
        with db.engine.connect() as conn:
            deltas = [catalog_pb2.StockChanged.FromString(row.payload).delta
                      for row in conn.execute(select(outbox.c.payload).order_by(outbox.c.id))]
        # The second waited for the first's commit before taking its id: id order is commit order.
        assert commits == ["first", "second"]
        assert deltas == [-1, -2]
    finally:
        db.dispose()
