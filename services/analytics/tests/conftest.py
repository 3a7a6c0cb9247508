"""Shared helpers for the analytics tests: migrated databases, event factories, a harness feeding the consumer."""

from __future__ import annotations

import itertools
import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from google.protobuf.message import Message as ProtoMessage

from weika.events.v1 import orders_pb2, redemption_pb2
from weika_analytics.bootstrap import MIGRATIONS
from weika_analytics.domain.model import Overview, Window
from weika_analytics.entrypoints import events
from weika_analytics.service_layer import services
from weika_kit import migrations
from weika_kit.bus import Message
from weika_kit.consumer import EventConsumer
from weika_kit.context import Caller
from weika_kit.db import Database
from weika_kit.protos import to_timestamp
from weika_kit.testing import FakeBus, delivered

MERCHANT = "mch_analytics_a"


class EventFactory:
    """Builds bus messages as the producers would send them; every call gets a new event id unless given one."""

    merchant_id = MERCHANT  # the default tenant of events and of Harness.overview

    def __init__(self) -> None:
        self._offsets = itertools.count()

    def message(self, payload: ProtoMessage, *, event_id: str | None = None,
                envelope_merchant_id: str | None = None) -> Message:
        return delivered(payload, event_id=event_id or "", merchant_id=envelope_merchant_id,
                         offset=next(self._offsets))

    def republished(self, message: Message) -> Message:
        """The same event sent again under a new event id (a producer that republished it)."""
        headers = tuple((k, str(uuid.uuid4()).encode() if k == "ce_id" else v) for k, v in message.headers)
        return Message(message.topic, 0, next(self._offsets), message.key, message.value, headers)

    def order_paid(self, order_id: str, paid_amount: int, paid_at: datetime, *, merchant_id: str = MERCHANT,
                   mode: str = "live", **kw) -> Message:
        lines = [orders_pb2.OrderLine(product_id="prd_1", product_name="50元代金券", product_kind="coupon",
                                      category_id="cat_1", quantity=2, unit_price=paid_amount // 2,
                                      line_amount=paid_amount)]
        customer = orders_pb2.OrderCustomer(customer_id="cus_1", external_id="VIP-1", birth_year=1991,
                                            region="CN-SH")
        return self.message(orders_pb2.OrderPaid(
            order_id=order_id, merchant_id=merchant_id, mode=mode, customer=customer, lines=lines,
            total_amount=paid_amount, paid_amount=paid_amount, channel="wechat", store_id="sto_1",
            paid_at=to_timestamp(paid_at)), **kw)

    def coupon_issued(self, coupon_id: str, issued_at: datetime, *, merchant_id: str = MERCHANT,
                      mode: str = "live", **kw) -> Message:
        return self.message(redemption_pb2.CouponIssued(
            coupon_id=coupon_id, merchant_id=merchant_id, mode=mode, order_id="ord_x", product_id="prd_1",
            category_id="cat_1", customer_id="cus_1", face_value=5000, threshold=20000,
            valid_from=to_timestamp(issued_at), valid_until=to_timestamp(issued_at + timedelta(days=30)),
            issued_at=to_timestamp(issued_at)), **kw)

    def coupon_redeemed(self, redemption_id: str, coupon_id: str, redeemed_at: datetime, *,
                        merchant_id: str = MERCHANT, mode: str = "live", **kw) -> Message:
        return self.message(redemption_pb2.CouponRedeemed(
            redemption_id=redemption_id, coupon_id=coupon_id, merchant_id=merchant_id, mode=mode,
            order_id="ord_x", product_id="prd_1", category_id="cat_1", customer_id="cus_1", store_id="sto_1",
            operator_id="stf_1", order_amount=23800, face_value=5000, redeemed_at=to_timestamp(redeemed_at)), **kw)

    def order_refunded(self, refund_id: str, order_id: str, amount: int, refunded_at: datetime, **kw) -> Message:
        return self.message(orders_pb2.OrderRefunded(
            order_id=order_id, merchant_id=MERCHANT, mode="live", refund_id=refund_id, refund_amount=amount,
            reason="customer_request", refunded_at=to_timestamp(refunded_at)), **kw)

    def coupon_reversed(self, redemption_id: str, coupon_id: str, reversed_at: datetime, **kw) -> Message:
        return self.message(redemption_pb2.CouponReversed(
            redemption_id=redemption_id, coupon_id=coupon_id, merchant_id=MERCHANT, mode="live",
            store_id="sto_1", operator_id="stf_1", reason="redeemed_by_mistake",
            reversed_at=to_timestamp(reversed_at)), **kw)

    def coupon_voided(self, coupon_id: str, voided_at: datetime, **kw) -> Message:
        return self.message(redemption_pb2.CouponVoided(
            coupon_id=coupon_id, merchant_id=MERCHANT, mode="live", order_id="ord_x", reason="order_refunded",
            voided_at=to_timestamp(voided_at)), **kw)


class Harness:
    """One analytics database fed through the real consumer (group "analytics.events")."""

    def __init__(self, db: Database):
        self.db = db
        self.consumer = EventConsumer(db, FakeBus(), group="analytics.events",
                                      handlers=events.handlers(db)["events"], max_attempts=1, retry_backoff_s=0)

    def apply(self, *messages: Message) -> list[str]:
        return [self.consumer.process(m) for m in messages]

    def overview(self, start: datetime | None = None, end: datetime | None = None, *,
                 merchant_id: str = MERCHANT, mode: str = "live") -> Overview:
        return services.get_overview(self.db, Caller(merchant_id, mode), Window(start, end))


@pytest.fixture
def ev() -> EventFactory:
    return EventFactory()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """A SQLite file migrated once per session; each test copies it instead of running the migrations again."""
    path = tmp_path_factory.mktemp("analytics-template") / "analytics.sqlite3"
    migrations.upgrade(f"sqlite:///{path}", MIGRATIONS)
    return path


@pytest.fixture
def make_harness(tmp_path, migrated_sqlite) -> Iterator[Callable[..., Harness]]:
    """Factory: a harness on a freshly migrated database (SQLite in tmp_path unless a URL is given)."""
    made: list[Harness] = []

    def make(url: str | None = None) -> Harness:
        if url is None:
            path = tmp_path / f"analytics-{len(made)}.sqlite3"
            shutil.copy(migrated_sqlite, path)
            url = f"sqlite:///{path}"
        else:
            migrations.upgrade(url, MIGRATIONS)
        harness = Harness(Database(url, service="analytics"))
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.db.dispose()


@pytest.fixture
def harness(make_harness) -> Harness:
    return make_harness()
