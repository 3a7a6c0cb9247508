"""The catalog's event handlers, one per topic, in one visible table."""

from __future__ import annotations

from weika_catalog.adapters.supplier import configured_supplier
from weika_catalog.service_layer import card_keys, services
from weika_kit.consumer import Event, Handler
from weika_kit.context import require_caller
from weika_kit.db import Database, UnitOfWork

TOP_UP_SUPPLIER = configured_supplier()


def on_order_paid(event: Event, uow: UnitOfWork) -> None:
    """The reservation becomes a sale; card-key lines get one key per unit (or wait for keys), top-up lines
    are topped up through the supplier (the account is the order's customer until orders carry one)."""
    caller = require_caller()
    order = event.payload
    services.consume_stock(uow, caller, order.order_id)
    card_keys.deliver_order(uow, caller, order.order_id,
                            [(line.product_id, line.quantity) for line in order.lines
                             if line.product_kind == "virtual"],
                            account=order.customer.customer_id, supplier=TOP_UP_SUPPLIER)


def on_order_cancelled(event: Event, uow: UnitOfWork) -> None:
    services.release_stock(uow, require_caller(), event.payload.order_id, "order-cancelled")


def on_order_refunded(event: Event, uow: UnitOfWork) -> None:
    refund = event.payload
    services.restock_refund(uow, require_caller(), refund.refund_id or event.envelope.id, refund.order_id,
                            [(line.product_id, line.product_kind, line.quantity) for line in refund.lines])


def handlers(db: Database) -> dict[str, dict[str, Handler]]:
    return {
        "orders": {
            "weika.orders.order-paid.v1": on_order_paid,
            "weika.orders.order-cancelled.v1": on_order_cancelled,
            "weika.orders.order-refunded.v1": on_order_refunded,
        },
    }
