"""Shared fixtures of the redemption tests: a migrated SQLite database, a movable clock, order-paid factories."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Table, func, select

from weika.events.v1 import orders_pb2
from weika_kit import context, crypto
from weika_kit.bus import Message
from weika_kit.consumer import EventConsumer
from weika_kit.db import Database
from weika_kit.migrations import upgrade
from weika_kit.protos import to_timestamp
from weika_kit.testing import FakeBus, delivered, outbox_rows
from weika_kit.topics import decode
from weika_redemption.bootstrap import MIGRATIONS
from weika_redemption.entrypoints import events
from weika_redemption.service_layer import services

PAID_TOPIC = "weika.orders.order-paid.v1"
MERCHANT = "mch_tea"
PAID_AT = datetime(2026, 6, 18, 2, 16, 41, tzinfo=UTC)


@dataclass
class Clock:
    """The database clock, moved by tests (uow.now() reads it)."""

    now: datetime = field(default=PAID_AT)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def coupon_terms(**overrides: Any) -> orders_pb2.CouponTerms:
    values: dict[str, Any] = {"face_value": 5000, "threshold": 0, "store_ids": [], "redeem_methods": ["qr", "code"],
                              "validity_mode": "relative", "validity_days": 30, "starts_after_days": 0}
    values.update(overrides)
    return orders_pb2.CouponTerms(**values)


def coupon_line(product_id: str = "prd_voucher50", quantity: int = 1, **terms: Any) -> orders_pb2.OrderLine:
    return orders_pb2.OrderLine(
        product_id=product_id, product_name="50元代金券", product_kind="coupon", category_id="cat_dining",
        quantity=quantity, unit_price=3990, line_amount=3990 * quantity, coupon=coupon_terms(**terms))


def goods_line(kind: str = "physical", quantity: int = 1) -> orders_pb2.OrderLine:
    return orders_pb2.OrderLine(product_id=f"prd_{kind}", product_name="茶杯", product_kind=kind,
                                category_id="cat_goods", quantity=quantity, unit_price=1500,
                                line_amount=1500 * quantity)


def order_paid(*lines: orders_pb2.OrderLine, order_id: str = "", merchant_id: str = MERCHANT,
               mode: str = "live") -> orders_pb2.OrderPaid:
    return orders_pb2.OrderPaid(
        order_id=order_id or f"ord_{uuid.uuid4().hex[:10]}", merchant_id=merchant_id, mode=mode,
        customer=orders_pb2.OrderCustomer(customer_id="cus_buyer"), lines=list(lines or [coupon_line()]),
        paid_amount=3990, channel="wechat", paid_at=to_timestamp(PAID_AT))


def bus_message(payload: orders_pb2.OrderPaid, *, event_id: str = "", time: datetime = PAID_AT) -> Message:
    """An order-paid record as the bus delivers it, with its CloudEvents envelope."""
    return delivered(payload, event_id=event_id, time=time, source="/weika/orders")


def outbox(db: Database, topic: str) -> list[tuple[Any, dict[str, Any]]]:
    """Decoded outbox rows of one topic (payload, envelope), oldest first."""
    return [(decode(topic, row.payload), json.loads(row.headers)) for row in outbox_rows(db, topic)]


def rows(db: Database, table: Table) -> list[Any]:
    with db.engine.connect() as conn:
        return list(conn.execute(select(table)))


def count(db: Database, table: Table) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def codes_of(db: Database, caller: context.Caller, order_id: str) -> list[str]:
    return [item.code for item in services.list_coupons(db, caller, order_id).coupons]


class Make:
    """Test-data factories and read helpers, handed to tests as the `make` fixture (tests cannot import conftest)."""

    MERCHANT = MERCHANT
    PAID_AT = PAID_AT
    PAID_TOPIC = PAID_TOPIC
    ISSUED_TOPIC = "weika.redemption.coupon-issued.v1"
    REDEEMED_TOPIC = "weika.redemption.coupon-redeemed.v1"
    coupon_terms = staticmethod(coupon_terms)
    coupon_line = staticmethod(coupon_line)
    goods_line = staticmethod(goods_line)
    order_paid = staticmethod(order_paid)
    bus_message = staticmethod(bus_message)
    outbox = staticmethod(outbox)
    rows = staticmethod(rows)
    count = staticmethod(count)
    codes_of = staticmethod(codes_of)


@pytest.fixture
def make() -> type[Make]:
    return Make


@pytest.fixture(autouse=True)
def secret_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A key of the test's own: nothing written under var/, and no key cached from another suite."""
    monkeypatch.setenv("WEIKA_SECRET_KEY", Fernet.generate_key().decode())
    crypto._key.cache_clear()
    yield
    crypto._key.cache_clear()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate once per session; each test copies the file (migrating costs more than most tests)."""
    path = tmp_path_factory.mktemp("template") / "redemption.sqlite3"
    upgrade(f"sqlite:///{path}", MIGRATIONS)
    return path


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db(tmp_path: Path, migrated_sqlite: Path, clock: Clock) -> Iterator[Database]:
    path = tmp_path / "redemption.sqlite3"
    shutil.copy(migrated_sqlite, path)
    database = Database(f"sqlite:///{path}", service="redemption", clock=clock)
    yield database
    database.dispose()


def new_consumer(db: Database) -> EventConsumer:
    return EventConsumer(db, FakeBus(), group="redemption.orders", handlers=events.handlers(db)["orders"],
                         max_attempts=1, retry_backoff_s=0)


@pytest.fixture
def consumer_for() -> Callable[[Database], EventConsumer]:
    """A factory of the service's order-paid consumer on any database (PostgreSQL tests bring their own)."""
    return new_consumer


@pytest.fixture
def consumer(db: Database) -> EventConsumer:
    """The service's order-paid consumer; one attempt, so a failing handler shows as dead_lettered at once."""
    return new_consumer(db)


@pytest.fixture
def pay(consumer: EventConsumer) -> Callable[..., orders_pb2.OrderPaid]:
    """Deliver an order-paid event to the service's consumer; returns the payload."""

    def deliver(*lines: orders_pb2.OrderLine, **kwargs: Any) -> orders_pb2.OrderPaid:
        payload = order_paid(*lines, **kwargs)
        assert consumer.process(bus_message(payload)) == "applied"
        return payload

    return deliver


@pytest.fixture
def issue_code(pay: Callable[..., orders_pb2.OrderPaid], db: Database) -> Callable[..., str]:
    """Issue one coupon (terms overridable) for a new order of `merchant_id` in `mode`; returns its code."""

    def issue(mode: str = "live", merchant_id: str = MERCHANT, **terms: Any) -> str:
        paid = pay(coupon_line(**terms), merchant_id=merchant_id, mode=mode)
        [code] = codes_of(db, context.Caller(merchant_id, mode), paid.order_id)
        return code

    return issue
