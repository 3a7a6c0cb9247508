"""Gateway test fixtures: a migrated SQLite database, fake service clients, a Flask test client, and factories."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from flask import Flask
from flask.testing import FlaskClient

from weika.analytics.v1 import analytics_pb2
from weika.catalog.v1 import catalog_pb2
from weika.orders.v1 import orders_pb2
from weika.redemption.v1 import redemption_pb2
from weika_gateway.__main__ import MIGRATIONS
from weika_gateway.app import create_app
from weika_gateway.clients import SERVICES
from weika_gateway.config import GatewaySettings
from weika_kit import ids, migrations
from weika_kit.context import Caller
from weika_kit.db import Database
from weika_kit.errors import RemoteError
from weika_kit.protos import to_timestamp

ADMIN_TOKEN = "operator-token-for-tests"
NOW = datetime(2026, 6, 18, 8, 0, tzinfo=UTC)


def not_found(code: str, message: str, **details: str) -> RemoteError:
    return RemoteError(grpc.StatusCode.NOT_FOUND, code, message, dict(details))


@dataclass
class Call:
    method: str
    caller: Caller | None
    request: Any


@dataclass
class FakeClients:
    """In-memory stand-ins for the services, kept per merchant and mode like the real ones.

    `fail(method, error)` makes every later call of `method` raise `error`; `calls` records each call.
    """

    calls: list[Call] = field(default_factory=list)
    failures: dict[str, Exception] = field(default_factory=dict)
    health_status: dict[str, str] = field(default_factory=lambda: dict.fromkeys(SERVICES, "SERVING"))
    health_delay_s: float = 0.0
    coupons_page_size: int = 2
    categories: dict[tuple[str, str], list[catalog_pb2.Category]] = field(default_factory=dict)
    products: dict[tuple[str, str, str], catalog_pb2.Product] = field(default_factory=dict)
    orders: dict[tuple[str, str, str], orders_pb2.Order] = field(default_factory=dict)
    orders_by_key: dict[tuple[str, str, str], tuple[str, str]] = field(default_factory=dict)
    coupons: dict[str, list[redemption_pb2.Coupon]] = field(default_factory=dict)
    # RedemptionService method name -> its answer, or a function of the request giving it
    redemption_answers: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, method: str, error: Exception) -> None:
        self.failures[method] = error

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def _record(self, method: str, caller: Caller | None, request: Any = None) -> None:
        with self.lock:
            self.calls.append(Call(method, caller, request))
        if method in self.failures:
            raise self.failures[method]

    def create_category(self, caller: Caller, request: catalog_pb2.CreateCategoryRequest) -> catalog_pb2.Category:
        self._record("create_category", caller, request)
        category = catalog_pb2.Category(id=ids.new_id("cat"), name=request.name, parent_id=request.parent_id,
                                        created_at=to_timestamp(NOW))
        self.categories.setdefault((caller.merchant_id, caller.mode), []).append(category)
        return category

    def list_categories(self, caller: Caller) -> catalog_pb2.ListCategoriesResponse:
        self._record("list_categories", caller)
        return catalog_pb2.ListCategoriesResponse(
            categories=self.categories.get((caller.merchant_id, caller.mode), []))

    def create_product(self, caller: Caller, request: catalog_pb2.CreateProductRequest) -> catalog_pb2.Product:
        self._record("create_product", caller, request)
        product = catalog_pb2.Product(
            id=ids.new_id("prd"), kind=request.kind, name=request.name, description=request.description,
            category_id=request.category_id, price=request.price, on_shelf=True, stock=request.stock,
            coupon=request.coupon if request.HasField("coupon") else None,
            created_at=to_timestamp(NOW), updated_at=to_timestamp(NOW))
        self.products[(caller.merchant_id, caller.mode, product.id)] = product
        return product

    def get_product(self, caller: Caller, product_id: str) -> catalog_pb2.Product:
        self._record("get_product", caller, product_id)
        product = self.products.get((caller.merchant_id, caller.mode, product_id))
        if product is None:
            raise not_found("product_not_found", f"product {product_id} does not exist", product_id=product_id)
        return product

    def create_order(self, caller: Caller, request: orders_pb2.CreateOrderRequest) -> orders_pb2.Order:
        self._record("create_order", caller, request)
        tenant_key = (caller.merchant_id, caller.mode, request.idempotency_key)
        with self.lock:
            if tenant_key in self.orders_by_key:
                order_id, first_fingerprint = self.orders_by_key[tenant_key]
                if first_fingerprint != request.request_fingerprint:
                    raise RemoteError(grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key_reused",
                                      "this Idempotency-Key was used with another request", {})
                return self.orders[(caller.merchant_id, caller.mode, order_id)]
            lines = []
            for item in request.items:
                product = self.products.get((caller.merchant_id, caller.mode, item.product_id))
                price = product.price if product is not None else 1000
                lines.append(orders_pb2.OrderLine(
                    product_id=item.product_id, product_name=product.name if product else "Item",
                    product_kind="coupon", category_id="cat_1", quantity=item.quantity, unit_price=price,
                    line_amount=price * item.quantity))
            total = sum(line.line_amount for line in lines)
            phone = request.customer.phone
            order = orders_pb2.Order(
                id=ids.new_id("ord"), status="pending_payment",
                customer=orders_pb2.Customer(customer_id="cus_1", external_id=request.customer.external_id,
                                             phone_masked=f"{phone[:3]}****{phone[-4:]}" if phone else "",
                                             birth_year=request.customer.birth_year, region=request.customer.region),
                lines=lines, total_amount=total, discount_amount=0, payable_amount=total,
                store_id=request.store_id, created_at=to_timestamp(NOW), updated_at=to_timestamp(NOW))
            self.orders[(caller.merchant_id, caller.mode, order.id)] = order
            self.orders_by_key[tenant_key] = (order.id, request.request_fingerprint)
            return order

    def _order(self, caller: Caller, order_id: str) -> orders_pb2.Order:
        order = self.orders.get((caller.merchant_id, caller.mode, order_id))
        if order is None:
            raise not_found("order_not_found", f"order {order_id} does not exist", order_id=order_id)
        return order

    def pay_order(self, caller: Caller, request: orders_pb2.PayOrderRequest) -> orders_pb2.Order:
        self._record("pay_order", caller, request)
        order = self._order(caller, request.order_id)
        order.status = "paid"
        order.channel = request.channel
        order.paid_amount = order.payable_amount
        order.paid_at.CopyFrom(to_timestamp(NOW))
        return order

    def get_order(self, caller: Caller, order_id: str) -> orders_pb2.Order:
        self._record("get_order", caller, order_id)
        return self._order(caller, order_id)

    def list_coupons(self, caller: Caller,
                     request: redemption_pb2.ListCouponsRequest) -> redemption_pb2.ListCouponsResponse:
        self._record("list_coupons", caller, request)
        everything = self.coupons.get(request.order_id, [])
        start = int(request.page_token or 0)
        end = start + self.coupons_page_size
        return redemption_pb2.ListCouponsResponse(
            coupons=everything[start:end], next_page_token=str(end) if end < len(everything) else "")

    def redeem_coupon(self, caller: Caller, request: redemption_pb2.RedeemCouponRequest) -> redemption_pb2.Redemption:
        self._record("redeem_coupon", caller, request)
        return redemption_pb2.Redemption(
            id=ids.new_id("rdm"), coupon_id="cpn_1", store_id=request.store_id, operator_id=caller.staff_id,
            order_amount=request.order_amount, face_value=2000, redeemed_at=to_timestamp(NOW))

    def redemption(self, caller: Caller, method: str, request: Any) -> Any:
        self._record(f"redemption.{method}", caller, request)
        answer = self.redemption_answers.get(method)
        return answer(request) if callable(answer) else answer

    def get_overview(self, caller: Caller, request: analytics_pb2.GetOverviewRequest) -> analytics_pb2.Overview:
        self._record("get_overview", caller, request)
        return analytics_pb2.Overview(orders_paid=3, gmv=29_700, coupons_issued=4, coupons_redeemed=1,
                                      redemption_rate=0.25)

    def health(self, service: str, timeout_s: float) -> str:
        self._record("health", None, service)
        time.sleep(self.health_delay_s)
        return self.health_status[service]


@pytest.fixture(scope="session")
def migrated_sqlite_file(tmp_path_factory) -> Path:
    """One migrated database per session; each test gets a copy (running Alembic per test is slow)."""
    path = tmp_path_factory.mktemp("template") / "gateway.sqlite3"
    migrations.upgrade(f"sqlite:///{path}", MIGRATIONS)
    return path


@pytest.fixture
def db(tmp_path, migrated_sqlite_file: Path) -> Iterator[Database]:
    path = tmp_path / "gateway.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        source = migrated_sqlite_file.with_name(migrated_sqlite_file.name + suffix)
        if source.exists():
            shutil.copy(source, path.with_name(path.name + suffix))
    database = Database(f"sqlite:///{path}", service="gateway")
    yield database
    database.dispose()


@pytest.fixture
def fake() -> FakeClients:
    return FakeClients()


@pytest.fixture
def settings() -> GatewaySettings:
    return GatewaySettings(admin_token=ADMIN_TOKEN)


@pytest.fixture
def app(db: Database, fake: FakeClients, settings: GatewaySettings) -> Flask:
    return create_app(db, clients=fake, settings=settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class Merchant:
    id: str
    live_key: str
    test_key: str

    @property
    def live(self) -> dict[str, str]:
        return bearer(self.live_key)

    @property
    def test(self) -> dict[str, str]:
        return bearer(self.test_key)


@pytest.fixture
def make_merchant(client: FlaskClient) -> Callable[..., Merchant]:
    """Factory: a merchant created through the operator endpoint, with its two keys."""

    def make(name: str = "Tea House") -> Merchant:
        response = client.post("/v1/merchants", json={"name": name}, headers=bearer(ADMIN_TOKEN))
        assert response.status_code == 201, response.get_json()
        body = response.get_json()
        return Merchant(body["id"], body["api_keys"]["live"], body["api_keys"]["test"])

    return make


@pytest.fixture
def merchant(make_merchant: Callable[..., Merchant]) -> Merchant:
    return make_merchant()


@pytest.fixture
def make_store(client: FlaskClient) -> Callable[..., dict[str, Any]]:
    """Factory: a store created through the API with the given key headers."""
    counter = iter(range(1, 10_000))

    def make(headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
        body = {"name": "Jing'an store", "code": f"SH-{next(counter):03d}", "region": "CN-SH", **overrides}
        response = client.post("/v1/stores", json=body, headers=headers)
        assert response.status_code == 201, response.get_json()
        return response.get_json()  # type: ignore[no-any-return]

    return make


def _coupon_product_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "coupon", "name": "618 ¥20 off", "description": "Spend 100, save 20", "category_id": "cat_1",
        "price": 990, "stock": {"mode": "limited", "quantity": 100},
        "coupon": {"face_value": 2000, "threshold": 10000, "store_ids": [], "redeem_methods": ["qr", "code"],
                   "validity": {"mode": "relative", "days": 30}},
    }
    body.update(overrides)
    return body


def _order_body(product_id: str = "prd_1", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"customer": {"external_id": "member-42", "phone": "13812345678", "birth_year": 1990,
                                         "region": "CN-SH"},
                            "items": [{"product_id": product_id, "quantity": 2}]}
    body.update(overrides)
    return body


def _assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    body = response.get_json()
    assert response.status_code == status, body
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    return body["error"]  # type: ignore[no-any-return]


@pytest.fixture
def coupon_product_body() -> Callable[..., dict[str, Any]]:
    """Factory: a valid POST /v1/products body for a coupon product; keyword arguments replace top-level fields."""
    return _coupon_product_body


@pytest.fixture
def order_body() -> Callable[..., dict[str, Any]]:
    """Factory: a valid POST /v1/orders body buying 2 of `product_id`; keyword arguments replace fields."""
    return _order_body


@pytest.fixture
def assert_error() -> Callable[..., dict[str, Any]]:
    """`assert_error(response, status, code)`: the response is the error envelope; returns its `error` object."""
    return _assert_error


@pytest.fixture
def operator() -> dict[str, str]:
    """Headers carrying the platform operator's token."""
    return bearer(ADMIN_TOKEN)
