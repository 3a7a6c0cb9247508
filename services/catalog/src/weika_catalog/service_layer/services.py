"""Catalog use cases: each runs in one unit of work, for one caller, and records the events it causes."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from weika.events.v1 import catalog_pb2 as events
from weika_catalog import metrics
from weika_catalog.adapters.repository import CatalogRepository, details_to_json, rule_to_json
from weika_catalog.domain import errors
from weika_catalog.domain.model import KINDS, CouponRule, PhysicalSpec, Product, VirtualSpec
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
    virtual: VirtualSpec | None = None
    physical: PhysicalSpec | None = None
    purchase_limit: int = 0


@dataclass(frozen=True)
class ProductChanges:
    """A PATCH: None = unchanged. A stock adjustment needs its reason."""

    name: str | None = None
    description: str | None = None
    price: int | None = None
    on_shelf: bool | None = None
    category_id: str | None = None
    purchase_limit: int | None = None
    low_stock_threshold: int | None = None
    coupon: CouponRule | None = None
    stock_adjustment: int = 0
    stock_reason: str = ""


@dataclass(frozen=True)
class ReservedLine:
    product: Product
    quantity: int


def _actor(caller: Caller) -> str:
    return caller.staff_id or caller.role or "system"


def _category_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidArgument("category name must be 1 to 100 characters", code="invalid_category",
                              details={"field": "name"})
    return name


def create_category(db: Database, caller: Caller, name: str, parent_id: str) -> dict:
    name = _category_name(name)
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
        row = {"id": ids.new_id("cat"), "name": name, "parent_id": parent_id or None, "created_at": uow.now(),
               "position": repo.next_category_position(parent_id or None)}
        repo.add_category(row)
        uow.commit()
    return {**row, "merchant_id": caller.merchant_id}


def list_categories(db: Database, caller: Caller) -> list:
    """Every category, sorted by position then age (children after their parent is the caller's choice)."""
    with db.unit_of_work() as uow:
        return CatalogRepository(uow, caller).list_categories()


def update_category(db: Database, caller: Caller, category_id: str, *, name: str | None = None,
                    position: int | None = None) -> Any:
    values: dict[str, Any] = {}
    if name is not None:
        values["name"] = _category_name(name)
    if position is not None:
        if position < 0:
            raise InvalidArgument("position cannot be negative", code="invalid_category",
                                  details={"field": "position"})
        values["position"] = position
    with db.unit_of_work() as uow:
        repo = CatalogRepository(uow, caller)
        if repo.get_category(category_id) is None:
            raise errors.CategoryNotFound(f"category {category_id} does not exist",
                                          details={"category_id": category_id})
        if values:
            repo.update_category(category_id, values)
        row = repo.get_category(category_id)
        uow.commit()
    return row


def delete_category(db: Database, caller: Caller, category_id: str) -> None:
    """Only an empty category goes: no products (on or off shelf) and no child categories."""
    with db.unit_of_work() as uow:
        repo = CatalogRepository(uow, caller)
        if repo.get_category(category_id) is None:
            raise errors.CategoryNotFound(f"category {category_id} does not exist",
                                          details={"category_id": category_id})
        if not repo.delete_category(category_id):
            products, children = repo.category_is_empty(category_id)
            raise errors.CategoryNotEmpty(
                f"category {category_id} still holds {products} product(s) and {children} subcategory(ies); "
                "move or delete them first",
                details={"category_id": category_id, "products": products, "children": children})
        uow.commit()


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
            created_at=now, updated_at=now, virtual=new.virtual, physical=new.physical,
            purchase_limit=new.purchase_limit)
        product.validate()
        if repo.get_category(new.category_id) is None:
            raise errors.CategoryNotFound(f"category {new.category_id} does not exist",
                                          details={"category_id": new.category_id})
        repo.add_product(product)
        if product.available:
            repo.record_move(product.id, None, product.available, "created", _actor(caller))
        uow.add_event(_product_changed(product, "created"))
        uow.commit()
    return product


PAGE_SIZE, MAX_PAGE_SIZE = 20, 100


def encode_cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any] | None:
    if not cursor:
        return None
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(parts, list) or len(parts) != arity:
            raise ValueError(cursor)
        return parts
    except ValueError:
        raise errors.InvalidCursor("cursor is not one this API gave out; start again without it",
                                   details={"field": "cursor"}) from None


def page_size(limit: int) -> int:
    if limit < 0 or limit > MAX_PAGE_SIZE:
        raise InvalidArgument(f"limit must be between 1 and {MAX_PAGE_SIZE}", code="invalid_limit",
                              details={"field": "limit", "maximum": MAX_PAGE_SIZE})
    return limit or PAGE_SIZE


@dataclass(frozen=True)
class ProductFilter:
    kind: str = ""
    category_id: str = ""
    on_shelf: bool | None = None
    text: str = ""


def list_products(db: Database, caller: Caller, where: ProductFilter, *, limit: int = 0,
                  cursor: str = "") -> tuple[list[Product], str]:
    """A page of products, newest first, and the cursor of the next page ("" on the last)."""
    size = page_size(limit)
    if where.kind and where.kind not in KINDS:
        raise InvalidArgument(f"kind must be one of {', '.join(KINDS)}", code="invalid_product",
                              details={"field": "kind"})
    after = decode_cursor(cursor, 2)
    position = (datetime.fromisoformat(after[0]), str(after[1])) if after else None
    with db.unit_of_work() as uow:
        products = CatalogRepository(uow, caller).list_products(
            kind=where.kind, category_id=where.category_id, on_shelf=where.on_shelf, text=where.text.strip(),
            limit=size + 1, after=position)
    if len(products) <= size:
        return products, ""
    last = products[size - 1]
    return products[:size], encode_cursor(last.created_at.isoformat(), last.id)


def update_product(db: Database, caller: Caller, product_id: str, changes: ProductChanges) -> Product:
    """Apply a PATCH in one transaction: product-changed, and a stock move + stock-changed for an adjustment."""
    with db.unit_of_work() as uow:
        repo = CatalogRepository(uow, caller)
        before = _must(repo, product_id)
        changed = before
        values: dict[str, Any] = {}
        for name in ("name", "description", "price", "on_shelf", "category_id", "purchase_limit"):
            value = getattr(changes, name)
            if value is not None:
                changed = replace(changed, **{name: value.strip() if name == "name" else value})
                values[name] = getattr(changed, name)
        if changes.low_stock_threshold is not None:
            if before.virtual is None:
                raise errors.InvalidProduct("only virtual products have a low-stock threshold",
                                            details={"field": "low_stock_threshold"})
            changed = replace(changed, virtual=replace(before.virtual, low_stock_threshold=changes.low_stock_threshold))
        if changes.coupon is not None:
            if before.kind != "coupon":
                raise errors.InvalidProduct("only coupon products have a coupon rule", details={"field": "coupon"})
            changed = replace(changed, coupon=changes.coupon)
            values["coupon_rule"] = rule_to_json(changes.coupon)
        changed.validate()
        if changes.category_id is not None and repo.get_category(changes.category_id) is None:
            raise errors.CategoryNotFound(f"category {changes.category_id} does not exist",
                                          details={"category_id": changes.category_id})
        if changed.virtual != before.virtual:
            values["details"] = details_to_json(changed)
        if values:
            repo.update_product(product_id, values)
        if changes.stock_adjustment:
            _adjust_stock(uow, repo, caller, before, changes.stock_adjustment, changes.stock_reason)
        elif changes.stock_reason:
            raise InvalidArgument("stock_reason goes with a stock_adjustment", code="invalid_stock_adjustment",
                                  details={"field": "stock_reason"})
        after = _must(repo, product_id)
        if values:
            uow.add_event(_product_changed(after, "updated"))
        uow.commit()
    return after


def _adjust_stock(uow: UnitOfWork, repo: CatalogRepository, caller: Caller, product: Product, delta: int,
                  reason: str) -> None:
    if product.stock_mode != "limited":
        raise InvalidArgument("unlimited stock cannot be adjusted", code="invalid_stock_adjustment",
                              details={"field": "stock_adjustment"})
    if not reason.strip():
        raise InvalidArgument("a stock adjustment needs a reason (e.g. stocktake, damaged)",
                              code="invalid_stock_adjustment", details={"field": "stock_reason"})
    if not repo.adjust_stock(product.id, delta):
        left = _must(repo, product.id).available
        raise InvalidArgument(f"cannot remove {-delta} units: only {left} available (reserved units stay)",
                              code="stock_would_go_negative",
                              details={"field": "stock_adjustment", "available": left, "adjustment": delta})
    repo.record_move(product.id, None, delta, "adjusted", _actor(caller), note=reason.strip())
    _stock_changed(uow, product, "", delta, "adjusted", _must(repo, product.id).available)


@dataclass(frozen=True)
class StockMove:
    id: int
    product_id: str
    order_id: str
    delta: int
    reason: str
    actor: str
    note: str
    created_at: datetime


def list_stock_moves(db: Database, caller: Caller, product_id: str, *, limit: int = 0,
                     cursor: str = "") -> tuple[list[StockMove], str]:
    """Newest first: the history that explains the product's available count."""
    size = page_size(limit)
    after = decode_cursor(cursor, 1)
    with db.unit_of_work() as uow:
        repo = CatalogRepository(uow, caller)
        _must(repo, product_id)
        rows = repo.stock_moves(product_id, size + 1, int(after[0]) if after else None)
    moves = [StockMove(r.id, r.product_id, r.order_id or "", r.delta, r.reason, r.actor, r.note, r.created_at)
             for r in rows[:size]]
    return moves, encode_cursor(moves[-1].id) if len(rows) > size else ""


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


def reserve_stock(db: Database, caller: Caller, order_id: str, lines: list[tuple[str, int]],
                  customer_id: str = "") -> list[ReservedLine]:
    """Reserve every line or none, within each product's per-customer limit. Idempotent per order: a retry
    returns the first reservation."""
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
        reserved = _reserve(db, caller, order_id, merged, customer_id)
    except (errors.OutOfStock, errors.PurchaseLimitExceeded) as refused:
        metrics.STOCK_RESERVATIONS.labels(refused.code).inc()
        raise
    metrics.STOCK_RESERVATIONS.labels("reserved").inc()
    return reserved


def _reserve(db: Database, caller: Caller, order_id: str, merged: dict[str, int],
             customer_id: str) -> list[ReservedLine]:
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
                if product.purchase_limit:
                    _count_purchase(repo, product, customer_id, quantity)
                if product.stock_mode == "limited":
                    # The read is a shortcut for a sold-out product (no row lock to queue for); the
                    # conditional update below is what guarantees the count.
                    if (product.available or 0) < quantity or not repo.take_stock(product_id, quantity):
                        left = (repo.get_product(product_id) or product).available
                        raise errors.OutOfStock(f"{product.name} is out of stock ({left} left, {quantity} wanted)",
                                                details={"product_id": product_id, "available": left,
                                                         "requested": quantity})
                    available = _must(repo, product_id).available  # as this transaction left it
                else:
                    repo.move_stock(product_id, available_delta=0, reserved_delta=quantity)
                    available = None
                repo.add_reservation(order_id, product_id, quantity,
                                     customer_id if product.purchase_limit and customer_id else None)
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


def _count_purchase(repo: CatalogRepository, product: Product, customer_id: str, quantity: int) -> None:
    if not customer_id:
        raise InvalidArgument(f"{product.name} is limited per customer: the order needs its customer",
                              code="customer_required", details={"product_id": product.id})
    if not repo.count_purchase(product.id, customer_id, quantity, product.purchase_limit):
        bought = repo.purchased(product.id, customer_id)
        raise errors.PurchaseLimitExceeded(
            f"{product.name} is limited to {product.purchase_limit} per customer; this customer already has "
            f"{bought}", details={"product_id": product.id, "purchase_limit": product.purchase_limit,
                                  "already_bought": bought, "requested": quantity})


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
        if r.customer_id:
            repo.uncount_purchase(r.product_id, r.customer_id, r.quantity)
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
            if not product.delivers_card_keys:  # card-key goods announce "consumed" once their keys are out
                _stock_changed(uow, product, order_id, 0, "consumed", product.available)


def restock_refund(uow: UnitOfWork, caller: Caller, refund_id: str, order_id: str,
                   lines: list[tuple[str, str, int]]) -> None:
    """On order-refunded, give back what can be sold again, once per (refund, product):
    physical goods come back to stock; virtual goods only for the units the refund withdrew from the delivery
    before the money went back (WithdrawDeliveries: a key shown to the buyer is spent, a top-up performed);
    coupons are voided by the redemption service, not restocked (the coupon stock was the offer, and the
    issued coupon is what is cancelled). Units a refused refund got back (RestoreDeliveries) are not restocked:
    the withdrawal rows are locked, so a racing restore either went first or is refused."""
    repo = CatalogRepository(uow, caller)
    withdrawn = repo.withdrawals_of_refund(refund_id, lock=True)
    for product_id, kind, quantity in lines:
        if kind == "coupon" or quantity <= 0:
            continue
        product = repo.get_product(product_id)
        if product is None:
            continue
        if product.kind == "virtual":
            quantity = withdrawn.get(product_id, 0)
            if not quantity:
                continue
        if not repo.claim_refund_restock(refund_id, product_id, quantity):
            continue
        limited = product.stock_mode == "limited"
        if limited:
            repo.adjust_stock(product_id, quantity)
        repo.record_move(product_id, order_id, quantity if limited else 0, "refunded", "order-refunded",
                         note=refund_id)
        _stock_changed(uow, product, order_id, quantity, "restocked", _must(repo, product_id).available)
