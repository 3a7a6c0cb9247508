"""Catalog use cases: each runs in one unit of work, for one caller, and records the events it causes."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from weika.events.v1 import catalog_pb2 as events
from weika_catalog.adapters.repository import CatalogRepository
from weika_catalog.domain import errors
from weika_catalog.domain.model import CouponRule, Product
from weika_kit import ids
from weika_kit.context import Caller
from weika_kit.db import Database, UnitOfWork
from weika_kit.errors import InvalidArgument
from weika_kit.protos import to_timestamp


@dataclass(frozen=True)
class NewProduct:
    kind: str
    name: str
    description: str
    category_id: str
    price: int
    stock_mode: str
    quantity: int
    coupon: CouponRule | None


@dataclass(frozen=True)
class ReservedLine:
    product: Product
    quantity: int


def _actor(caller: Caller) -> str:
    return caller.staff_id or caller.role or "system"


def create_category(db: Database, caller: Caller, name: str, parent_id: str) -> dict:
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidArgument("category name must be 1 to 100 characters", code="invalid_category",
                              details={"field": "name"})
    with db.unit_of_work() as uow:
        repo = CatalogRepository(uow, caller)
        if parent_id:
            parent = repo.get_category(parent_id)
            if parent is None:
                raise errors.CategoryNotFound(f"parent category {parent_id} does not exist",
                                              details={"category_id": parent_id})
            if parent.parent_id:
                raise InvalidArgument("categories nest one level only", code="category_too_deep",
                                      details={"parent_id": parent_id})
        row = {"id": ids.new_id("cat"), "name": name, "parent_id": parent_id or None, "created_at": uow.now()}
        repo.add_category(row)
        uow.commit()
    return {**row, "merchant_id": caller.merchant_id}


def list_categories(db: Database, caller: Caller) -> list:
    with db.unit_of_work() as uow:
        return CatalogRepository(uow, caller).list_categories()


def _product_changed(product: Product, change: str) -> events.ProductChanged:
    return events.ProductChanged(
        product_id=product.id, merchant_id=product.merchant_id, mode=product.mode, kind=product.kind,
        name=product.name, category_id=product.category_id, price=product.price, on_shelf=product.on_shelf,
        change=change, occurred_at=to_timestamp(product.updated_at))


def create_product(db: Database, caller: Caller, new: NewProduct) -> Product:
    with db.unit_of_work() as uow:
        repo = CatalogRepository(uow, caller)
        now = uow.now()
        product = Product(
            id=ids.new_id("prd"), merchant_id=caller.merchant_id, mode=caller.mode, kind=new.kind,
            name=new.name.strip(), description=new.description, category_id=new.category_id, price=new.price,
            on_shelf=True, stock_mode=new.stock_mode,
            available=new.quantity if new.stock_mode == "limited" else None, reserved=0, coupon=new.coupon,
            created_at=now, updated_at=now)
        product.validate()
        if new.coupon is not None:
            new.coupon.validate()
        if repo.get_category(new.category_id) is None:
            raise errors.CategoryNotFound(f"category {new.category_id} does not exist",
                                          details={"category_id": new.category_id})
        repo.add_product(product)
        uow.add_event(_product_changed(product, "created"))
        uow.commit()
    return product


def get_product(db: Database, caller: Caller, product_id: str) -> Product:
    with db.unit_of_work() as uow:
        product = CatalogRepository(uow, caller).get_product(product_id)
    if product is None:
        raise errors.ProductNotFound(f"product {product_id} does not exist", details={"product_id": product_id})
    return product


def _stock_changed(uow: UnitOfWork, product: Product, order_id: str, delta: int, reason: str,
                   available: int | None) -> None:
    uow.add_event(events.StockChanged(
        product_id=product.id, merchant_id=product.merchant_id, mode=product.mode, order_id=order_id,
        delta=delta, available=-1 if available is None else available, reason=reason,
        occurred_at=to_timestamp(uow.now())))


def reserve_stock(db: Database, caller: Caller, order_id: str, lines: list[tuple[str, int]]) -> list[ReservedLine]:
    """Reserve every line or none. Idempotent per order: a retry returns the first reservation."""
    if not order_id:
        raise InvalidArgument("order_id is required", details={"field": "order_id"})
    merged: dict[str, int] = {}
    for product_id, quantity in lines:
        if quantity <= 0:
            raise InvalidArgument("quantity must be at least 1", code="invalid_quantity",
                                  details={"product_id": product_id})
        merged[product_id] = merged.get(product_id, 0) + quantity
    if not merged:
        raise InvalidArgument("an order needs at least one item", code="empty_order")
    try:
        with db.unit_of_work() as uow:
            repo = CatalogRepository(uow, caller)
            existing = repo.reservations(order_id)
            if existing:
                return [ReservedLine(_must(repo, r.product_id), r.quantity) for r in existing]
            reserved = []
            # A fixed lock order (by product id) keeps two orders for the same products from deadlocking.
            for product_id in sorted(merged):
                quantity = merged[product_id]
                product = repo.get_product(product_id)
                if product is None:
                    raise errors.ProductNotFound(f"product {product_id} does not exist",
                                                 details={"product_id": product_id})
                if not product.on_shelf:
                    raise errors.ProductOffShelf(f"{product.name} is not on sale", details={"product_id": product_id})
                if product.stock_mode == "limited":
                    if not repo.take_stock(product_id, quantity):
                        left = (repo.get_product(product_id) or product).available
                        raise errors.OutOfStock(f"{product.name} is out of stock ({left} left, {quantity} wanted)",
                                                details={"product_id": product_id, "available": left,
                                                         "requested": quantity})
                    available = _must(repo, product_id).available  # as this transaction left it
                else:
                    repo.move_stock(product_id, available_delta=0, reserved_delta=quantity)
                    available = None
                repo.add_reservation(order_id, product_id, quantity)
                repo.record_move(product_id, order_id, -quantity, "reserved", _actor(caller))
                _stock_changed(uow, product, order_id, -quantity, "reserved", available)
                reserved.append(ReservedLine(product, quantity))
            uow.commit()
            return reserved
    except IntegrityError:
        # The same order reserved concurrently (a retried call): the first one won; return its result.
        with db.unit_of_work() as uow:
            repo = CatalogRepository(uow, caller)
            existing = repo.reservations(order_id)
            if not existing:
                raise
            return [ReservedLine(_must(repo, r.product_id), r.quantity) for r in existing]


def _must(repo: CatalogRepository, product_id: str) -> Product:
    product = repo.get_product(product_id)
    if product is None:
        raise errors.ProductNotFound(f"product {product_id} does not exist", details={"product_id": product_id})
    return product


def release_stock(uow: UnitOfWork, caller: Caller, order_id: str, reason: str) -> bool:
    """Give back what the order reserved and did not consume. Idempotent: a second call releases nothing."""
    repo = CatalogRepository(uow, caller)
    released = False
    for r in repo.reservations(order_id):
        if not repo.set_reservation_status(order_id, r.product_id, expected="reserved", status="released"):
            continue
        product = _must(repo, r.product_id)
        limited = product.stock_mode == "limited"
        repo.move_stock(r.product_id, available_delta=r.quantity if limited else 0, reserved_delta=-r.quantity)
        repo.record_move(r.product_id, order_id, r.quantity, "released", reason or _actor(caller))
        _stock_changed(uow, product, order_id, r.quantity, "released",
                       (product.available or 0) + r.quantity if limited else None)
        released = True
    return released


def consume_stock(uow: UnitOfWork, caller: Caller, order_id: str) -> None:
    """The order was paid: its reservation becomes a sale."""
    repo = CatalogRepository(uow, caller)
    for r in repo.reservations(order_id):
        if repo.set_reservation_status(order_id, r.product_id, expected="reserved", status="consumed"):
            product = _must(repo, r.product_id)
            repo.move_stock(r.product_id, available_delta=0, reserved_delta=-r.quantity)
            repo.record_move(r.product_id, order_id, 0, "consumed", "order-paid")
            _stock_changed(uow, product, order_id, 0, "consumed", product.available)
