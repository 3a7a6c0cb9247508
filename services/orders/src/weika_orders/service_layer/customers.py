"""Customers (members): created or updated from orders (CreateOrder upserts them), listed with their totals."""

from __future__ import annotations

from weika_kit.context import Caller
from weika_kit.db import Database
from weika_orders.adapters.repository import OrdersRepository
from weika_orders.domain import errors
from weika_orders.domain.model import CustomerSummary, Order, OrderFilter, normalize_tags
from weika_orders.service_layer.lifecycle import MAX_PAGE_SIZE, decode_cursor, encode_cursor, list_orders

DEFAULT_PAGE_SIZE = 20
ORDERS_SHOWN = 50


def list_customers(db: Database, caller: Caller, region: str, page_size: int,
                   cursor: str, tag: str = "") -> tuple[list[CustomerSummary], str]:
    size = page_size or DEFAULT_PAGE_SIZE
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise errors.InvalidOrderRequest(f"page_size must be between 1 and {MAX_PAGE_SIZE}",
                                         details={"field": "page_size"})
    with db.unit_of_work() as uow:
        found = OrdersRepository(uow, caller).list_customers(region.strip(), size + 1, decode_cursor(cursor),
                                                            tag.strip())
    page = found[:size]
    more = len(found) > size and page
    return page, encode_cursor(page[-1].first_seen_at, page[-1].customer.id) if more else ""


def get_customer(db: Database, caller: Caller, customer_id: str) -> tuple[CustomerSummary, list[Order]]:
    with db.unit_of_work() as uow:
        summary = OrdersRepository(uow, caller).customer_summary(customer_id) if customer_id else None
    if summary is None:
        raise errors.CustomerNotFound(f"customer {customer_id} does not exist", details={"customer_id": customer_id})
    orders, _ = list_orders(db, caller, OrderFilter(customer_id=customer_id), ORDERS_SHOWN, "")
    return summary, orders


def set_customer_tags(db: Database, caller: Caller, customer_id: str, tags: list[str]) -> CustomerSummary:
    """Replace a customer's tags (the whole set); the customer as it now is."""
    normalized = normalize_tags(tags)
    with db.unit_of_work() as uow:
        repo = OrdersRepository(uow, caller)
        if not customer_id or not repo.set_tags(customer_id, normalized):
            raise errors.CustomerNotFound(f"customer {customer_id} does not exist",
                                          details={"customer_id": customer_id})
        summary = repo.customer_summary(customer_id)
        uow.commit()
    assert summary is not None
    return summary
