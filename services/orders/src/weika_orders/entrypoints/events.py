"""The orders service's event handlers, one per topic, in one visible table.

Issued coupons (redemption) and delivered goods (catalog) move a paid digital order to `delivered`
(service_layer/delivery.py). Not yet: group-failed (marketing) refunds.
"""

from __future__ import annotations

from weika_kit.consumer import Event, Handler
from weika_kit.context import require_caller
from weika_kit.db import Database, UnitOfWork
from weika_orders.service_layer import delivery


def on_coupon_issued(event: Event, uow: UnitOfWork) -> None:
    coupon = event.payload
    if coupon.order_id:
        delivery.coupon_issued(uow, require_caller(), coupon.order_id, coupon.product_id, coupon.coupon_id)


def on_stock_changed(event: Event, uow: UnitOfWork) -> None:
    """`consumed` with an order id is the catalog's "this order's line is delivered"; other moves are not ours."""
    change = event.payload
    if change.reason == "consumed" and change.order_id:
        delivery.goods_delivered(uow, require_caller(), change.order_id, change.product_id)


def handlers(db: Database) -> dict[str, dict[str, Handler]]:
    return {
        "delivery": {
            "weika.redemption.coupon-issued.v1": on_coupon_issued,
            "weika.catalog.stock-changed.v1": on_stock_changed,
        },
    }
