"""Catalog test fixtures: a migrated database, callers, product factories and order events as the bus delivers them."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet

from weika.events.v1 import orders_pb2
from weika_catalog.bootstrap import MIGRATIONS
from weika_catalog.domain.model import CouponRule, PhysicalSpec, Validity, VirtualSpec
from weika_catalog.entrypoints import events as catalog_events
from weika_catalog.service_layer import services
from weika_kit import crypto, migrations
from weika_kit.bus import Message
from weika_kit.consumer import EventConsumer
from weika_kit.context import Caller
from weika_kit.db import Database
from weika_kit.testing import FakeBus, delivered, outbox_rows

SHOP = Caller("mch_shop", "test", staff_id="key_1", role="owner")
RIVAL = Caller("mch_rival", "test", staff_id="key_2", role="owner")
PAID_TOPIC = "weika.orders.order-paid.v1"
REFUNDED_TOPIC = "weika.orders.order-refunded.v1"


def migrated(url: str) -> Database:
    migrations.upgrade(url, MIGRATIONS)
    return Database(url, service="catalog", pool_size=20)


@pytest.fixture(autouse=True)
def secret_key(monkeypatch):
    """Card keys are encrypted with a key of the test's own, never one under var/."""
    monkeypatch.setenv("WEIKA_SECRET_KEY", Fernet.generate_key().decode())
    crypto._key.cache_clear()
    yield
    crypto._key.cache_clear()


@pytest.fixture
def make_db():
    """Factory: a migrated catalog database at a URL (for PostgreSQL tests)."""
    made = []

    def make(url: str) -> Database:
        made.append(migrated(url))
        return made[-1]

    yield make
    for database in made:
        database.dispose()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory):
    """Migrate once per session; each test copies the file (migrating costs more than most tests)."""
    path = tmp_path_factory.mktemp("catalog") / "migrated.sqlite3"
    migrated(f"sqlite:///{path}").dispose()
    return path


@pytest.fixture
def db(tmp_path, migrated_sqlite):
    path = tmp_path / "catalog.sqlite3"
    shutil.copyfile(migrated_sqlite, path)
    database = Database(f"sqlite:///{path}", service="catalog", pool_size=20)
    yield database
    database.dispose()


def coupon_rule(**changes) -> CouponRule:  # type: ignore[no-untyped-def]
    base = {"face_value": 1000, "threshold": 5000, "store_ids": ("st_1",), "redeem_methods": ("qr", "code"),
            "validity": Validity("relative", days=30)}
    return CouponRule(**{**base, **changes})


def category(db: Database, caller: Caller = SHOP, name: str = "餐饮券", parent_id: str = "") -> str:
    return str(services.create_category(db, caller, name, parent_id)["id"])


def new_product(db: Database, caller: Caller = SHOP, *, kind: str = "physical", name: str = "茶杯",
                category_id: str = "", quantity: int | None = 10, purchase_limit: int = 0,
                delivery: str = "card_key", coupon: CouponRule | None = None):  # type: ignore[no-untyped-def]
    return services.create_product(db, caller, services.NewProduct(
        kind=kind, name=name, description="", category_id=category_id or category(db, caller), price=1500,
        stock_mode="limited" if quantity is not None else "unlimited", quantity=quantity or 0,
        coupon=(coupon or coupon_rule()) if kind == "coupon" else None,
        virtual=VirtualSpec(delivery, low_stock_threshold=2, supplier_sku="sku_1") if kind == "virtual" else None,
        physical=PhysicalSpec(500, "500ml") if kind == "physical" else None, purchase_limit=purchase_limit))


def order_line(product, quantity: int = 1) -> orders_pb2.OrderLine:  # type: ignore[no-untyped-def]
    return orders_pb2.OrderLine(product_id=product.id, product_name=product.name, product_kind=product.kind,
                                category_id=product.category_id, quantity=quantity, unit_price=product.price,
                                line_amount=product.price * quantity)


def order_paid(order_id: str, *lines: orders_pb2.OrderLine, caller: Caller = SHOP) -> orders_pb2.OrderPaid:
    return orders_pb2.OrderPaid(order_id=order_id, merchant_id=caller.merchant_id, mode=caller.mode,
                                lines=list(lines), channel="simulated")


def order_refunded(order_id: str, refund_id: str, *lines: orders_pb2.OrderLine,
                   caller: Caller = SHOP) -> orders_pb2.OrderRefunded:
    return orders_pb2.OrderRefunded(order_id=order_id, merchant_id=caller.merchant_id, mode=caller.mode,
                                    refund_id=refund_id, lines=list(lines), reason="customer_request")


def bus_message(topic: str, payload, *, event_id: str = "") -> Message:  # type: ignore[no-untyped-def]
    """A record as the bus delivers it, with its CloudEvents envelope (a new event id unless given)."""
    message = delivered(payload, event_id=event_id, time=datetime(2026, 6, 18, 8, 0, tzinfo=UTC),
                        source="/weika/orders")
    assert message.topic == topic, f"{type(payload).__name__} travels on {message.topic}, not {topic}"
    return message


def consumer(db: Database) -> EventConsumer:
    return EventConsumer(db, FakeBus(), group="catalog", handlers=catalog_events.handlers(db)["orders"],
                         max_attempts=1, retry_backoff_s=0)


def outbox(db: Database, topic: str) -> list:  # type: ignore[type-arg]
    return outbox_rows(db, topic)


class Make:
    """The helpers above, for tests (a test module cannot import this conftest by name)."""

    shop, rival = SHOP, RIVAL
    paid_topic, refunded_topic = PAID_TOPIC, REFUNDED_TOPIC
    coupon_rule = staticmethod(coupon_rule)
    category = staticmethod(category)
    product = staticmethod(new_product)
    line = staticmethod(order_line)
    order_paid = staticmethod(order_paid)
    order_refunded = staticmethod(order_refunded)
    message = staticmethod(bus_message)
    consumer = staticmethod(consumer)
    outbox = staticmethod(outbox)


@pytest.fixture
def make() -> type[Make]:
    return Make
