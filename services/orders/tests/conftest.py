"""Test harness for the orders service: a migrated database, fake catalog and marketing served over real
gRPC on port 0, and the orders servicer itself on a real gRPC server, called with a caller in metadata."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from weika.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from weika.marketing.v1 import marketing_pb2, marketing_pb2_grpc
from weika.orders.v1 import orders_pb2 as pb
from weika.orders.v1 import orders_pb2_grpc
from weika.redemption.v1 import redemption_pb2, redemption_pb2_grpc
from weika_kit import context, grpc_client, migrations
from weika_kit.context import Caller
from weika_kit.db import Database
from weika_kit.errors import Conflict, NotFound
from weika_kit.grpc_server import GrpcServer
from weika_kit.protos import to_timestamp
from weika_kit.testing import outbox_rows
from weika_orders.adapters import tables
from weika_orders.adapters.upstream import CatalogClient, MarketingClient, RedemptionClient
from weika_orders.bootstrap import MIGRATIONS
from weika_orders.config import PaymentSettings
from weika_orders.entrypoints.grpc_api import OrdersServicer
from weika_orders.service_layer.services import Upstreams

# Phones are encrypted at rest; a throwaway key keeps the tests from writing one under var/.
os.environ.setdefault("WEIKA_SECRET_KEY", Fernet.generate_key().decode())

TEST_CALLER = Caller("mch_tea", "test", staff_id="stf_1", role="owner")
LIVE_CALLER = Caller("mch_tea", "live", staff_id="stf_1", role="owner")
OTHER_MERCHANT = Caller("mch_other", "test", staff_id="stf_9", role="owner")

COUPON_RULE = catalog_pb2.CouponRule(
    face_value=5000, threshold=20000, store_ids=["sto_1", "sto_2"], redeem_methods=["qr", "code"],
    validity=catalog_pb2.Validity(mode="fixed", starts_at=to_timestamp(datetime(2025, 6, 1, tzinfo=UTC)),
                                  ends_at=to_timestamp(datetime(2025, 6, 30, tzinfo=UTC))))

RATE_RULE = catalog_pb2.CouponRule(
    face_value=0, threshold=0, redeem_methods=["code"], discount_rate=8500, max_discount=3000, max_uses=4,
    usage_windows=[catalog_pb2.UsageWindow(weekdays=[1, 2, 3, 4, 5], start_hour=14, end_hour=17)],
    validity=catalog_pb2.Validity(mode="relative", days=30))


@dataclass
class FakeProduct:
    id: str
    name: str
    kind: str
    price: int
    stock: int | None  # None = unlimited
    category_id: str = "cat_dining"
    coupon: catalog_pb2.CouponRule | None = None


class FakeCatalog(catalog_pb2_grpc.CatalogServiceServicer):
    """Reserve/release with the real contract: all or nothing, idempotent per order id, typed refusals."""

    def __init__(self) -> None:
        self.products = {p.id: p for p in (
            FakeProduct("prd_coupon", "50元代金券（满200可用）", "coupon", 4500, 100, coupon=COUPON_RULE),
            FakeProduct("prd_tea", "Jasmine tea", "physical", 12000, None, category_id="cat_retail"),
            FakeProduct("prd_rare", "Limited mug", "physical", 3000, 1, category_id="cat_retail"),
            FakeProduct("prd_rate", "8.5折 afternoon tea", "coupon", 1000, 100, coupon=RATE_RULE),
            FakeProduct("prd_card", "Game card 100", "virtual", 9000, 100, category_id="cat_cards"),
        )}
        self.reservations: dict[str, list[catalog_pb2.ReservedLine]] = {}
        self.stock_taken: dict[str, int] = {}  # order id -> times stock was actually taken for it
        self.release_calls: list[str] = []
        self.released: set[str] = set()
        self.callers: list[Caller | None] = []
        self.fail_next: list[grpc.StatusCode] = []
        self.release_fails = 0
        # WithdrawDeliveries: units delivered per (order, product) (a key shown; default none), units withdrawn,
        # each refund's answer, the requests, and statuses to fail the next calls with.
        self.delivered: dict[tuple[str, str], int] = {}
        self.withdrawn: dict[tuple[str, str], int] = {}
        self.withdrawals: dict[str, list[catalog_pb2.WithdrawDeliveriesLine]] = {}
        self.withdraw_requests: list[catalog_pb2.WithdrawDeliveriesRequest] = []
        self.withdraw_fails: list[grpc.StatusCode] = []
        # RestoreDeliveries: the refunds whose withdrawal was given back (with the answer), the requests, and
        # statuses to fail the next calls with (before anything is restored).
        self.restored: dict[str, list[catalog_pb2.WithdrawDeliveriesLine]] = {}
        self.restore_requests: list[catalog_pb2.RestoreDeliveriesRequest] = []
        self.restore_fails: list[grpc.StatusCode] = []
        self.lock = threading.Lock()

    def ReserveStock(self, request, ctx):  # noqa: N802
        with self.lock:
            self.callers.append(context.current_caller())
            if self.fail_next:
                ctx.abort(self.fail_next.pop(0), "catalog is down")
            if request.order_id in self.reservations:
                return catalog_pb2.ReserveStockResponse(lines=self.reservations[request.order_id])
            wanted = [(line.product_id, line.quantity) for line in request.lines]
            for product_id, quantity in wanted:
                product = self.products.get(product_id)
                if product is None:
                    raise NotFound(f"product {product_id} does not exist", code="product_not_found",
                                   details={"product_id": product_id})
                if product.stock is not None and product.stock < quantity:
                    raise Conflict(f"{product.name} is out of stock ({product.stock} left, {quantity} wanted)",
                                   code="out_of_stock", details={"product_id": product_id,
                                                                 "available": product.stock, "requested": quantity})
            lines = []
            for product_id, quantity in wanted:
                product = self.products[product_id]
                if product.stock is not None:
                    product.stock -= quantity
                lines.append(catalog_pb2.ReservedLine(
                    product_id=product.id, product_name=product.name, product_kind=product.kind,
                    category_id=product.category_id, quantity=quantity, unit_price=product.price,
                    coupon=product.coupon))
            self.reservations[request.order_id] = lines
            self.stock_taken[request.order_id] = self.stock_taken.get(request.order_id, 0) + 1
            return catalog_pb2.ReserveStockResponse(lines=lines)

    def ReleaseStock(self, request, ctx):  # noqa: N802
        with self.lock:
            if self.release_fails:
                self.release_fails -= 1
                ctx.abort(grpc.StatusCode.UNAVAILABLE, "catalog is down")
            self.release_calls.append(request.order_id)
            lines = self.reservations.get(request.order_id)
            if lines is None or request.order_id in self.released:
                return catalog_pb2.ReleaseStockResponse(released=False)
            self.released.add(request.order_id)
            for line in lines:
                product = self.products[line.product_id]
                if product.stock is not None:
                    product.stock += line.quantity
            return catalog_pb2.ReleaseStockResponse(released=True)


    def WithdrawDeliveries(self, request, ctx):  # noqa: N802
        """The real contract: all or nothing, idempotent per refund id, refused naming a product whose units
        were delivered; other kinds of product are answered with 0."""
        with self.lock:
            self.withdraw_requests.append(request)
            if self.withdraw_fails:
                ctx.abort(self.withdraw_fails.pop(0), "catalog is down")
            if request.refund_id in self.restored:
                raise Conflict(f"refund {request.refund_id} was refused and its withdrawn units given back",
                               code="withdrawal_restored", details={"refund_id": request.refund_id})
            if request.refund_id in self.withdrawals:
                return catalog_pb2.WithdrawDeliveriesResponse(lines=self.withdrawals[request.refund_id])
            ordered = {line.product_id: line.quantity for line in self.reservations.get(request.order_id, [])}
            virtual = [line for line in request.lines
                       if line.product_id in self.products and self.products[line.product_id].kind == "virtual"]
            for line in virtual:
                key = (request.order_id, line.product_id)
                delivered = self.delivered.get(key, 0)
                undelivered = ordered.get(line.product_id, 0) - delivered - self.withdrawn.get(key, 0)
                if line.quantity > undelivered:
                    raise Conflict(f"{self.products[line.product_id].name}: {delivered} unit(s) delivered already",
                                   code="virtual_goods_delivered",
                                   details={"product_id": line.product_id, "delivered": delivered,
                                            "requested": line.quantity})
            answer = []
            for line in request.lines:
                taken = line.quantity if line.product_id in {v.product_id for v in virtual} else 0
                key = (request.order_id, line.product_id)
                self.withdrawn[key] = self.withdrawn.get(key, 0) + taken
                answer.append(catalog_pb2.WithdrawDeliveriesLine(product_id=line.product_id, quantity=taken))
            self.withdrawals[request.refund_id] = answer
            return catalog_pb2.WithdrawDeliveriesResponse(lines=answer)

    def RestoreDeliveries(self, request, ctx):  # noqa: N802
        """The real contract: gives back exactly what the refund withdrew, once per refund id (a repeat answers
        the same); a refund that withdrew nothing (or another order's) answers no lines."""
        with self.lock:
            self.restore_requests.append(request)
            if self.restore_fails:
                ctx.abort(self.restore_fails.pop(0), "catalog is down")
            order_of = {r.refund_id: r.order_id for r in self.withdraw_requests}
            if order_of.get(request.refund_id) != request.order_id or request.refund_id not in self.withdrawals:
                return catalog_pb2.RestoreDeliveriesResponse(lines=[])
            if request.refund_id not in self.restored:
                withdrawn = [line for line in self.withdrawals[request.refund_id] if line.quantity > 0]
                for line in withdrawn:
                    self.withdrawn[(request.order_id, line.product_id)] -= line.quantity
                self.restored[request.refund_id] = withdrawn
            return catalog_pb2.RestoreDeliveriesResponse(lines=self.restored[request.refund_id])


class FakeMarketing(marketing_pb2_grpc.MarketingServiceServicer):
    """满200减50 on every basket, unless a test queued the next answers (a status, an error or a quote)."""

    def __init__(self) -> None:
        self.next_answers: list[grpc.StatusCode | Exception | marketing_pb2.Quote] = []
        self.requests: list[marketing_pb2.QuotePriceRequest] = []

    def QuotePrice(self, request, ctx):  # noqa: N802
        self.requests.append(request)
        if self.next_answers:
            answer = self.next_answers.pop(0)
            if isinstance(answer, marketing_pb2.Quote):
                return answer
            if isinstance(answer, Exception):
                raise answer
            ctx.abort(answer, "marketing is down")
        subtotal = sum(line.unit_price * line.quantity for line in request.lines)
        applied = []
        if subtotal >= 20000:
            applied.append(marketing_pb2.AppliedDiscount(rule_id="cmp_618", kind="full_reduction", amount=5000,
                                                         description="满200减50"))
        discount = sum(d.amount for d in applied)
        return marketing_pb2.Quote(subtotal=subtotal, discount_amount=discount, total=subtotal - discount,
                                   applied=applied)


class FakeRedemption(redemption_pb2_grpc.RedemptionServiceServicer):
    """VoidOrderCoupons with the real contract: all or nothing, refused naming a redeemed coupon, idempotent per
    refund. `units[(order_id, product_id)]` coupons were issued (default: plenty); `redeemed` lists redeemed ones."""

    def __init__(self) -> None:
        self.units: dict[tuple[str, str], int] = {}
        self.redeemed: dict[tuple[str, str], list[str]] = {}
        self.voided: dict[tuple[str, str], int] = {}
        self.by_refund: dict[str, list[str]] = {}
        self.requests: list[Any] = []
        self.fail_next: list[grpc.StatusCode] = []
        self.lock = threading.Lock()

    def VoidOrderCoupons(self, request, ctx):  # noqa: N802
        with self.lock:
            self.requests.append(request)
            if self.fail_next:
                ctx.abort(self.fail_next.pop(0), "redemption is down")
            if request.refund_id in self.by_refund:
                return redemption_pb2.VoidOrderCouponsResponse(coupon_ids=self.by_refund[request.refund_id])
            for line in request.lines:
                key = (request.order_id, line.product_id)
                redeemed = self.redeemed.get(key, [])
                available = self.units.get(key, 99) - self.voided.get(key, 0) - len(redeemed)
                if line.quantity > available:
                    raise Conflict(f"coupon {redeemed[0]} was redeemed", code="coupon_already_redeemed",
                                   details={"coupon_id": redeemed[0] if redeemed else ""})
            voided = []
            for line in request.lines:
                key = (request.order_id, line.product_id)
                self.voided[key] = self.voided.get(key, 0) + line.quantity
                voided += [f"cpn_{line.product_id}_{n}" for n in range(line.quantity)]
            self.by_refund[request.refund_id] = voided
            return redemption_pb2.VoidOrderCouponsResponse(coupon_ids=voided)


class MutableClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def fingerprint_of(**body: Any) -> str:
    """What the gateway does: a hash of the request body."""
    return hashlib.sha256(repr(sorted(body.items())).encode()).hexdigest()


@dataclass
class Harness:
    db: Database
    clock: MutableClock
    catalog: FakeCatalog
    marketing: FakeMarketing
    upstreams: Upstreams
    stub: orders_pb2_grpc.OrdersServiceStub
    servers: list[GrpcServer] = field(default_factory=list)
    redemption: FakeRedemption = field(default_factory=FakeRedemption)

    def create(self, caller: Caller = TEST_CALLER, *, key: str = "idem-1",
               items: tuple[tuple[str, int], ...] = (("prd_coupon", 2),), external_id: str = "VIP-1",
               phone: str = "13800000000", birth_year: int = 1991, region: str = "CN-SH",
               store_id: str = "", fingerprint: str | None = None) -> pb.Order:
        if fingerprint is None:
            fingerprint = fingerprint_of(items=items, external_id=external_id, phone=phone,
                                         birth_year=birth_year, region=region, store_id=store_id)
        request = pb.CreateOrderRequest(
            idempotency_key=key, request_fingerprint=fingerprint,
            customer=pb.CustomerInput(external_id=external_id, phone=phone, birth_year=birth_year, region=region),
            items=[pb.OrderItem(product_id=p, quantity=q) for p, q in items], store_id=store_id)
        return self.call(caller, self.stub.CreateOrder, request)

    def pay(self, order_id: str, caller: Caller = TEST_CALLER, channel: str = "simulated") -> pb.Order:
        return self.call(caller, self.stub.PayOrder, pb.PayOrderRequest(order_id=order_id, channel=channel))

    def get(self, order_id: str, caller: Caller = TEST_CALLER) -> pb.Order:
        return self.call(caller, self.stub.GetOrder, pb.GetOrderRequest(order_id=order_id))

    def cancel(self, order_id: str, caller: Caller = TEST_CALLER, reason: str = "") -> pb.Order:
        return self.call(caller, self.stub.CancelOrder, pb.CancelOrderRequest(order_id=order_id, reason=reason))

    @staticmethod
    def call(caller: Caller, method: Callable[..., Any], request: Any) -> Any:
        with context.bound(caller=caller, request_id=context.new_request_id()):
            return grpc_client.call(method, request)

    def outbox(self, topic: str, message_type: type) -> list[Any]:
        return [message_type.FromString(row.payload) for row in outbox_rows(self.db, topic)]

    def count(self, table_name: str, **where: Any) -> int:
        table = tables.metadata.tables[table_name]
        with self.db.engine.connect() as conn:
            query = select(func.count()).select_from(table)
            for column, value in where.items():
                query = query.where(table.c[column] == value)
            return int(conn.execute(query).scalar_one())

    def rows(self, table_name: str, **where: Any) -> list[Any]:
        table = tables.metadata.tables[table_name]
        with self.db.engine.connect() as conn:
            query = select(table)
            for column, value in where.items():
                query = query.where(table.c[column] == value)
            return list(conn.execute(query))

    def close(self) -> None:
        for server in self.servers:
            server.stop(0)
            # The kit caches one channel per target; a later test's server on a reused port must not inherit
            # this one's channel stuck in reconnect backoff.
            grpc_client.forget(f"127.0.0.1:{server.port}")
        self.db.dispose()


def _serve(name: str, register: Callable[[grpc.Server], None], service_name: str,
           max_workers: int = 4) -> GrpcServer:
    server = GrpcServer(name, "127.0.0.1:0", [register], [service_name], max_workers=max_workers)
    server.start()
    return server


def start_harness(url: str, *, max_workers: int = 4, migrated: bool = False,
                  payment_settings: PaymentSettings | None = None) -> Harness:
    if not migrated:
        migrations.upgrade(url, MIGRATIONS)
    clock = MutableClock()
    db = Database(url, service="orders", clock=clock)
    catalog, marketing = FakeCatalog(), FakeMarketing()
    catalog_server = _serve("fake-catalog", lambda s: catalog_pb2_grpc.add_CatalogServiceServicer_to_server(catalog, s),
                            "weika.catalog.v1.CatalogService")
    marketing_server = _serve(
        "fake-marketing", lambda s: marketing_pb2_grpc.add_MarketingServiceServicer_to_server(marketing, s),
        "weika.marketing.v1.MarketingService")
    redemption = FakeRedemption()
    redemption_server = _serve(
        "fake-redemption", lambda s: redemption_pb2_grpc.add_RedemptionServiceServicer_to_server(redemption, s),
        "weika.redemption.v1.RedemptionService")
    upstreams = Upstreams(catalog=CatalogClient(f"127.0.0.1:{catalog_server.port}"),
                          marketing=MarketingClient(f"127.0.0.1:{marketing_server.port}"),
                          redemption=RedemptionClient(f"127.0.0.1:{redemption_server.port}"))
    servicer = OrdersServicer(db, upstreams, payment_settings or PaymentSettings(None, "http://127.0.0.1:9"))
    orders_server = _serve("orders", lambda s: orders_pb2_grpc.add_OrdersServiceServicer_to_server(servicer, s),
                           "weika.orders.v1.OrdersService", max_workers=max_workers)
    stub = grpc_client.stub(orders_pb2_grpc.OrdersServiceStub, f"127.0.0.1:{orders_server.port}")
    return Harness(db, clock, catalog, marketing, upstreams, stub,
                   [orders_server, catalog_server, marketing_server, redemption_server], redemption)


@pytest.fixture
def make_harness() -> Iterator[Callable[..., Harness]]:
    """Factory `make(database_url, max_workers=4) -> Harness`; everything it started is stopped afterwards."""
    started: list[Harness] = []

    def make(url: str, *, max_workers: int = 4, migrated: bool = False,
             payment_settings: PaymentSettings | None = None) -> Harness:
        started.append(start_harness(url, max_workers=max_workers, migrated=migrated,
                                     payment_settings=payment_settings))
        return started[-1]

    yield make
    for h in started:
        h.close()


@pytest.fixture(scope="session")
def migrated_sqlite_file(tmp_path_factory) -> Path:
    """Migrations run once; each test gets a copy of the migrated file (keeps the suite fast)."""
    path = tmp_path_factory.mktemp("orders-schema") / "orders.sqlite3"
    migrations.upgrade(f"sqlite:///{path}", MIGRATIONS)
    return path


@pytest.fixture
def orders_database(request, migrated_sqlite_file, tmp_path) -> Callable[..., tuple[str, bool]]:
    """`orders_database(kind, name) -> (url, migrated)`: a copy of the migrated SQLite file ("sqlite"), or a fresh
    PostgreSQL database that the harness migrates ("postgres")."""

    def make(kind: str = "sqlite", name: str = "orders") -> tuple[str, bool]:
        if kind == "sqlite":
            path = tmp_path / f"{name}.sqlite3"
            shutil.copyfile(migrated_sqlite_file, path)
            return f"sqlite:///{path}", True
        return request.getfixturevalue("fresh_postgres_database")(name), False

    return make


@pytest.fixture
def harness(make_harness, migrated_sqlite_file, tmp_path) -> Harness:
    path = tmp_path / "orders.sqlite3"
    shutil.copyfile(migrated_sqlite_file, path)
    return make_harness(f"sqlite:///{path}", migrated=True)


@pytest.fixture
def callers() -> SimpleNamespace:
    return SimpleNamespace(test=TEST_CALLER, live=LIVE_CALLER, other_merchant=OTHER_MERCHANT,
                           clerk_elsewhere=Caller("mch_tea", "test", staff_id="stf_2", role="clerk",
                                                  store_ids=("sto_9",)))


# --- payment channels: the payment simulator (weika-paysim, the provider's side) served on port 0


@dataclass
class MerchantKeys:
    """A merchant's key material as the providers issue it (generated once per test session)."""

    wechat_private_pem: str
    wechat_public_pem: str
    alipay_private_pem: str
    alipay_public_pem: str
    api_v3_key: str = "0123456789abcdef0123456789ABCDEF"


@pytest.fixture(scope="session")
def merchant_keys() -> MerchantKeys:
    from weika_paysim import protocol

    wechat, alipay = protocol.new_rsa_key(), protocol.new_rsa_key()
    return MerchantKeys(protocol.private_pem(wechat), protocol.public_pem(wechat), protocol.private_pem(alipay),
                        protocol.public_pem(alipay))


@dataclass
class PaySim:
    url: str
    sim: Any

    def post(self, path: str, body: dict[str, Any]) -> Any:
        import requests

        response = requests.post(self.url + path, json=body, timeout=10)
        assert response.status_code in (200, 201), response.text
        return response.json()

    def register(self, keys: MerchantKeys, *, mchid: str = "1900000109", appid: str = "wx8888888888888888",
                 app_id: str = "2021000000000001") -> tuple[pb.WechatPayConfig, pb.AlipayConfig]:
        """Register the merchant with both providers; the configurations the merchant then gives Weika."""
        wechat = self.post("/sim/wechat/merchants", {
            "mchid": mchid, "appid": appid, "merchant_serial_no": "5157F09EFDC096DE15EBE81A47057A72",
            "merchant_public_key_pem": keys.wechat_public_pem, "api_v3_key": keys.api_v3_key})
        alipay = self.post("/sim/alipay/apps", {"app_id": app_id, "app_public_key_pem": keys.alipay_public_pem})
        return (pb.WechatPayConfig(mchid=mchid, appid=appid, merchant_serial_no="5157F09EFDC096DE15EBE81A47057A72",
                                   merchant_private_key_pem=keys.wechat_private_pem, api_v3_key=keys.api_v3_key,
                                   platform_public_key_pem=wechat["platform_public_key_pem"],
                                   platform_serial_no=wechat["platform_serial_no"]),
                pb.AlipayConfig(app_id=app_id, app_private_key_pem=keys.alipay_private_pem,
                                alipay_public_key_pem=alipay["alipay_public_key_pem"]))

    def notifications(self, channel: str, out_trade_no: str, **options: Any) -> list[tuple[dict[str, str], bytes]]:
        """Signed notifications of the customer paying, built but not sent (the test delivers them)."""
        answer = self.post(f"/sim/{channel}/pay", {"out_trade_no": out_trade_no, "deliver": False, **options})
        return [(n["headers"], n["body"].encode()) for n in answer["notifications"]]


def _serve_wsgi(app: Any) -> tuple[Any, str]:
    """A real HTTP server on 127.0.0.1:0 in a thread; returns (server, base URL)."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


@pytest.fixture
def serve_wsgi() -> Callable[[Any], tuple[Any, str]]:
    return _serve_wsgi


@pytest.fixture(scope="session")
def paysim_keys() -> Any:
    from weika_paysim.simulator import Simulator

    return Simulator.generate()


@pytest.fixture
def paysim(paysim_keys) -> Iterator[PaySim]:
    """A fresh simulator (no merchants, no trades) with the session's provider keys (generating them is slow)."""
    from weika_paysim.app import create_app
    from weika_paysim.simulator import Simulator

    app = create_app(Simulator(paysim_keys.wechat_platform_key, paysim_keys.wechat_platform_serial,
                               paysim_keys.alipay_key))
    server, url = _serve_wsgi(app)
    yield PaySim(url, app.extensions["paysim"])
    server.shutdown()
