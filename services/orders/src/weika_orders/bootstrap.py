"""Wires the orders service: its migrations, gRPC servicer, upstream clients, event handlers, sweeper, timers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from weika.orders.v1 import orders_pb2, orders_pb2_grpc
from weika_kit.db import Database
from weika_kit.service import ServiceDefinition
from weika_orders.adapters.upstream import CatalogClient, MarketingClient, RedemptionClient
from weika_orders.config import PaymentSettings, timer_interval_s
from weika_orders.entrypoints import events
from weika_orders.entrypoints.grpc_api import OrdersServicer
from weika_orders.service_layer.services import Upstreams
from weika_orders.service_layer.sweeper import run_sweeper
from weika_orders.service_layer.timers import run_timers

MIGRATIONS = str(Path(__file__).parent / "migrations")


def upstreams() -> Upstreams:
    """Real clients, addressed by service name (WEIKA_CATALOG/MARKETING/REDEMPTION_GRPC_ADDR)."""
    return Upstreams(catalog=CatalogClient("catalog"), marketing=MarketingClient("marketing"),
                     redemption=RedemptionClient("redemption"))


def registrations(db: Database) -> list:
    servicer = OrdersServicer(db, upstreams())
    return [lambda server: orders_pb2_grpc.add_OrdersServiceServicer_to_server(servicer, server)]


def background(db: Database, stop: threading.Event) -> list[Callable[[], None]]:
    catalog = CatalogClient("catalog")
    payment_settings = PaymentSettings.from_env()
    return [lambda: run_sweeper(db, catalog, stop, payment_settings=payment_settings),
            lambda: run_timers(db, catalog, stop, timer_interval_s())]


DEFINITION = ServiceDefinition(
    name="orders",
    migrations=MIGRATIONS,
    registrations=registrations,
    grpc_service_names=[orders_pb2.DESCRIPTOR.services_by_name["OrdersService"].full_name],
    consumers=events.handlers,
    background=background,
)
