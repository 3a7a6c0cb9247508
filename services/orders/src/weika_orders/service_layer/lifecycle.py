"""After payment: shipping physical goods, completing orders, order history, lists, counts and settings."""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from weika_kit.context import Caller
from weika_kit.db import Database
from weika_orders.adapters.repository import OrdersRepository
from weika_orders.domain import errors
from weika_orders.domain.model import (
    AWAITING_SHIPMENT,
    LISTED_STATUSES,
    PAID,
    SHIPPED,
    Order,
    OrderFilter,
    OrderSettings,
    Shipment,
    transition_refused,
)
from weika_orders.service_layer.services import _must_get, actor_of

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def ship_order(db: Database, caller: Caller, order_id: str, shipment: Shipment) -> Order:
    """`paid -> awaiting_shipment -> shipped` (or from awaiting_shipment), with the logistics, in one transaction."""
    with db.unit_of_work() as uow:
        repo = OrdersRepository(uow, caller)
        order = _must_get(repo, caller, order_id)
        if not order.has_physical_goods:
            raise errors.NothingToShip("this order has no physical goods to ship",
                                       details={"order_id": order_id, "current_status": order.status})
        actor = actor_of(caller)
        if order.status == PAID and repo.move(order_id, PAID, AWAITING_SHIPMENT):
            repo.add_history(order_id, PAID, AWAITING_SHIPMENT, actor, "physical_goods")
        if not repo.move(order_id, AWAITING_SHIPMENT, SHIPPED):
            raise transition_refused(repo.status_of(order_id) or order.status, SHIPPED)
        repo.add_shipment(order_id, shipment)
        repo.add_history(order_id, AWAITING_SHIPMENT, SHIPPED, actor, "shipped")
        shipped = _must_get(repo, caller, order_id)
        uow.commit()
    log.info("order shipped", extra={"order_id": order_id, "carrier": shipment.carrier})
    return shipped


@dataclass(frozen=True)
class Transition:
    from_status: str
    to_status: str
    actor: str
    reason: str
    at: datetime


def order_history(db: Database, caller: Caller, order_id: str) -> list[Transition]:
    with db.unit_of_work() as uow:
        repo = OrdersRepository(uow, caller)
        _must_get(repo, caller, order_id)
        return [Transition(r.from_status, r.to_status, r.actor, r.reason, r.at) for r in repo.history(order_id)]


def encode_cursor(created_at: datetime, entity_id: str) -> str:
    """An opaque position in a newest-first list: the last item's (created_at, id)."""
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{entity_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    try:
        created_at, _, order_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        at = datetime.fromisoformat(created_at)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise errors.InvalidCursor("cursor is not one this service handed out", details={"field": "cursor"}) from None
    if not order_id or at.tzinfo is None:
        raise errors.InvalidCursor("cursor is not one this service handed out", details={"field": "cursor"})
    return at, order_id


def _visible(caller: Caller, where: OrderFilter) -> OrderFilter:
    """Store-scoped staff see their stores' orders only (in the query, so pages stay full); a filter on
    another store is refused."""
    if not caller.store_ids:
        return where
    if where.store_id and not caller.may_act_at_store(where.store_id):
        raise errors.StoreNotAllowed("you do not work at this store", details={"store_id": where.store_id})
    return replace(where, within_stores=tuple(caller.store_ids))


def list_orders(db: Database, caller: Caller, where: OrderFilter, page_size: int, cursor: str) -> tuple[list[Order], str]:
    size = page_size or DEFAULT_PAGE_SIZE
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise errors.InvalidOrderRequest(f"page_size must be between 1 and {MAX_PAGE_SIZE}",
                                         details={"field": "page_size"})
    after = decode_cursor(cursor)
    where = _visible(caller, where)
    with db.unit_of_work() as uow:
        orders = OrdersRepository(uow, caller).list_orders(where, size + 1, after)
    page, more = orders[:size], len(orders) > size
    return page, encode_cursor(page[-1].created_at, page[-1].id) if more and page else ""


def count_orders(db: Database, caller: Caller, where: OrderFilter) -> dict[str, int]:
    with db.unit_of_work() as uow:
        counts = OrdersRepository(uow, caller).count_by_status(_visible(caller, where))
    return {status: counts.get(status, 0) for status in LISTED_STATUSES}


def get_settings(db: Database, caller: Caller) -> OrderSettings:
    with db.unit_of_work() as uow:
        return OrdersRepository(uow, caller).settings()


def put_settings(db: Database, caller: Caller, settings: OrderSettings) -> OrderSettings:
    with db.unit_of_work() as uow:
        repo = OrdersRepository(uow, caller)
        repo.save_settings(settings)
        saved = repo.settings()
        uow.commit()
    log.info("order settings saved", extra={"auto_cancel_minutes": saved.auto_cancel_minutes,
                                            "auto_confirm_days": saved.auto_confirm_days})
    return saved


def filter_from(request: Any, from_timestamp: Any) -> OrderFilter:
    """An OrderFilter from a ListOrdersRequest (proto kept out of the domain)."""
    return OrderFilter(
        status=request.status.strip(), store_id=request.store_id.strip(), customer_id=request.customer_id.strip(),
        product_id=request.product_id.strip(),
        created_from=from_timestamp(request.created_from, present=request.HasField("created_from")),
        created_to=from_timestamp(request.created_to, present=request.HasField("created_to")))
