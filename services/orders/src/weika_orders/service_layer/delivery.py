"""Delivery of digital orders: issued coupons and delivered virtual goods move a paid order to `delivered`.

Redemption announces each issued coupon (`coupon-issued`, with the order id); the catalog announces a virtual
line delivered with `stock-changed` reason `consumed` and the order id (card keys: once every unit has its
key; top-ups: on order-paid). Each is recorded once per (order, coupon) or (order, product), so a redelivered
event changes nothing. When everything of an order without physical goods is delivered, one conditional
update `paid -> delivered` (with history) moves it; the auto-confirm timer then completes it. A delivery
recorded while the order is not paid yet just waits: `record_payment` checks again.

Each handler locks the order row before recording: two last deliveries of one order handled at once (two
replicas, two partitions) would otherwise each count only its own under READ COMMITTED and neither would
move the order. Locked, the second one waits, then sees the first.
"""

from __future__ import annotations

import logging

from weika_kit.context import Caller
from weika_kit.db import UnitOfWork
from weika_orders.adapters.repository import OrdersRepository
from weika_orders.domain.model import DELIVERED, PAID, fully_delivered

log = logging.getLogger(__name__)

COUPONS_ISSUED = "coupons_issued"
GOODS_DELIVERED = "goods_delivered"


def deliver_if_complete(repo: OrdersRepository, order_id: str, reason: str) -> bool:
    """`paid -> delivered` when the order has no physical goods and everything is delivered; True if moved."""
    order = repo.get_order(order_id)
    if order is None or order.status != PAID or order.has_physical_goods:
        return False
    coupons, goods = repo.deliveries(order_id)
    if not fully_delivered(order.lines, coupons, goods):
        return False
    if not repo.move(order_id, PAID, DELIVERED):
        return False  # refunded or delivered by a concurrent event in the meantime
    repo.add_history(order_id, PAID, DELIVERED, "system", reason)
    log.info("order delivered", extra={"order_id": order_id, "reason": reason})
    return True


def coupon_issued(uow: UnitOfWork, caller: Caller, order_id: str, product_id: str, coupon_id: str) -> None:
    """One coupon of an order was issued."""
    repo = OrdersRepository(uow, caller)
    if repo.lock_order(order_id) is None:
        log.warning("coupon issued for an unknown order", extra={"order_id": order_id, "coupon_id": coupon_id})
        return
    if repo.record_delivery(order_id, product_id, f"coupon:{coupon_id}"):
        deliver_if_complete(repo, order_id, COUPONS_ISSUED)


def goods_delivered(uow: UnitOfWork, caller: Caller, order_id: str, product_id: str) -> None:
    """The catalog delivered a product line of an order; only virtual lines count (coupons count their
    issued coupons, physical goods are shipped)."""
    repo = OrdersRepository(uow, caller)
    if repo.lock_order(order_id) is None:
        return
    order = repo.get_order(order_id)
    assert order is not None
    if not any(line.product_id == product_id and line.product_kind == "virtual" for line in order.lines):
        return
    if repo.record_delivery(order_id, product_id, f"goods:{product_id}"):
        deliver_if_complete(repo, order_id, GOODS_DELIVERED)
