"""The catalog's event handlers, one per topic, in one visible table."""

from __future__ import annotations

from weika_catalog.service_layer import services
from weika_kit.consumer import Event, Handler
from weika_kit.context import require_caller
from weika_kit.db import Database, UnitOfWork


def on_order_paid(event: Event, uow: UnitOfWork) -> None:
    services.consume_stock(uow, require_caller(), event.payload.order_id)


def on_order_cancelled(event: Event, uow: UnitOfWork) -> None:
    services.release_stock(uow, require_caller(), event.payload.order_id, "order-cancelled")


def handlers(db: Database) -> dict[str, dict[str, Handler]]:
    return {
        "orders": {
            "weika.orders.order-paid.v1": on_order_paid,
            "weika.orders.order-cancelled.v1": on_order_cancelled,
        },
    }
