"""Reads and writes of catalog rows for one merchant and mode, mapping them to domain objects."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row

from weika_catalog.adapters import tables as t
from weika_catalog.domain.errors import DeliveryChangedConcurrently
from weika_catalog.domain.model import CouponRule, PhysicalSpec, Product, UsageWindow, Validity, VirtualSpec
from weika_kit.context import Caller
from weika_kit.db import UnitOfWork

AWAITING_PAYMENT = "awaiting_payment"  # a delivery row a withdrawal left before order-paid was handled
GUARD_ATTEMPTS = 5  # how often a guarded update of a delivery re-reads the row after losing to another

def rule_to_dict(rule: CouponRule) -> dict[str, Any]:
    v = rule.validity
    return {
        "face_value": rule.face_value, "threshold": rule.threshold, "store_ids": list(rule.store_ids),
        "redeem_methods": list(rule.redeem_methods),
        "validity": {"mode": v.mode, "days": v.days, "starts_after_days": v.starts_after_days,
                     "starts_at": v.starts_at.isoformat() if v.starts_at else None,
                     "ends_at": v.ends_at.isoformat() if v.ends_at else None},
        "discount_rate": rule.discount_rate, "max_discount": rule.max_discount,
        "usage_windows": [{"weekdays": list(w.weekdays), "start_hour": w.start_hour, "end_hour": w.end_hour}
                          for w in rule.usage_windows],
        "max_uses": rule.max_uses,
    }


def rule_to_json(rule: CouponRule | None) -> str | None:
    return None if rule is None else json.dumps(rule_to_dict(rule))


def rule_from_json(raw: str | None) -> CouponRule | None:
    if not raw:
        return None
    data = json.loads(raw)
    v = data["validity"]
    validity = Validity(
        mode=v["mode"], days=v["days"], starts_after_days=v["starts_after_days"],
        starts_at=datetime.fromisoformat(v["starts_at"]) if v["starts_at"] else None,
        ends_at=datetime.fromisoformat(v["ends_at"]) if v["ends_at"] else None)
    windows = tuple(UsageWindow(tuple(w["weekdays"]), w["start_hour"], w["end_hour"])
                    for w in data.get("usage_windows", ()))
    return CouponRule(data["face_value"], data["threshold"], tuple(data["store_ids"]),
                      tuple(data["redeem_methods"]), validity, discount_rate=data.get("discount_rate", 0),
                      max_discount=data.get("max_discount", 0), usage_windows=windows,
                      max_uses=data.get("max_uses", 1))


def details_to_json(product: Product) -> str | None:
    if product.virtual is not None:
        v = product.virtual
        return json.dumps({"virtual": {"delivery": v.delivery, "low_stock_threshold": v.low_stock_threshold,
                                       "supplier_sku": v.supplier_sku}})
    if product.physical is not None:
        return json.dumps({"physical": {"weight_grams": product.physical.weight_grams,
                                        "spec": product.physical.spec}})
    return None


def _product(row: Row[Any], card_keys_available: int = 0) -> Product:
    details = json.loads(row.details) if row.details else {}
    virtual = VirtualSpec(**details["virtual"]) if "virtual" in details else None
    physical = PhysicalSpec(**details["physical"]) if "physical" in details else None
    return Product(
        id=row.id, merchant_id=row.merchant_id, mode=row.mode, kind=row.kind, name=row.name,
        description=row.description, category_id=row.category_id, price=row.price, on_shelf=row.on_shelf,
        stock_mode=row.stock_mode, available=row.stock_available, reserved=row.stock_reserved,
        coupon=rule_from_json(row.coupon_rule), created_at=row.created_at, updated_at=row.updated_at,
        virtual=virtual, physical=physical, purchase_limit=row.purchase_limit,
        card_keys_available=card_keys_available)


class CatalogRepository:
    def __init__(self, uow: UnitOfWork, caller: Caller):
        self.uow = uow
        self.merchant_id = caller.merchant_id
        self.mode = caller.mode

    def _upsert(self, table: t.Table):  # type: ignore[no-untyped-def]
        """An INSERT that can say ON CONFLICT DO NOTHING, on either database."""
        dialect = postgresql if self.uow.db.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(table)

    def _mine(self, table: t.Table):  # type: ignore[no-untyped-def]
        return (table.c.merchant_id == self.merchant_id) & (table.c.mode == self.mode)

    # categories

    def add_category(self, row: dict[str, Any]) -> None:
        self.uow.execute(insert(t.categories).values(merchant_id=self.merchant_id, mode=self.mode, **row))

    def get_category(self, category_id: str) -> Row[Any] | None:
        return self.uow.execute(
            select(t.categories).where(t.categories.c.id == category_id, self._mine(t.categories))).first()

    def list_categories(self) -> list[Row[Any]]:
        c = t.categories.c
        return list(self.uow.execute(
            select(t.categories).where(self._mine(t.categories)).order_by(c.position, c.created_at, c.id)))

    def next_category_position(self, parent_id: str | None) -> int:
        c = t.categories.c
        siblings = c.parent_id.is_(None) if parent_id is None else c.parent_id == parent_id
        top = self.uow.execute(select(func.max(c.position)).where(self._mine(t.categories), siblings)).scalar()
        return 0 if top is None else int(top) + 1

    def update_category(self, category_id: str, values: dict[str, Any]) -> None:
        self.uow.execute(update(t.categories).where(t.categories.c.id == category_id, self._mine(t.categories))
                         .values(**values))

    def category_is_empty(self, category_id: str) -> tuple[int, int]:
        """(products, child categories) in the category."""
        products = self.uow.execute(select(func.count()).select_from(t.products).where(
            t.products.c.category_id == category_id, self._mine(t.products))).scalar_one()
        children = self.uow.execute(select(func.count()).select_from(t.categories).where(
            t.categories.c.parent_id == category_id, self._mine(t.categories))).scalar_one()
        return int(products), int(children)

    def delete_category(self, category_id: str) -> bool:
        # The NOT EXISTS guards make the delete itself refuse a category that gained a product meanwhile.
        p, c = t.products, t.categories.alias("child")
        result = self.uow.execute(delete(t.categories).where(
            t.categories.c.id == category_id, self._mine(t.categories),
            ~select(p.c.id).where(p.c.category_id == category_id).exists(),
            ~select(c.c.id).where(c.c.parent_id == category_id).exists()))
        return bool(result.rowcount == 1)

    # products

    def add_product(self, product: Product) -> None:
        self.uow.execute(insert(t.products).values(**self._product_values(product)))

    def add_products(self, products: list[Product]) -> None:
        if products:
            self.uow.execute(insert(t.products), [self._product_values(p) for p in products])

    @staticmethod
    def _product_values(product: Product) -> dict[str, Any]:
        return dict(
            id=product.id, merchant_id=product.merchant_id, mode=product.mode, kind=product.kind,
            name=product.name, description=product.description, category_id=product.category_id,
            price=product.price, on_shelf=product.on_shelf, stock_mode=product.stock_mode,
            stock_available=product.available, stock_reserved=0, coupon_rule=rule_to_json(product.coupon),
            created_at=product.created_at, updated_at=product.updated_at, details=details_to_json(product),
            purchase_limit=product.purchase_limit)

    def _free_keys(self, product_ids: list[str]) -> dict[str, int]:
        if not product_ids:
            return {}
        k = t.card_keys.c
        rows = self.uow.execute(select(k.product_id, func.count()).where(
            k.product_id.in_(product_ids), k.order_id.is_(None), self._mine(t.card_keys)).group_by(k.product_id))
        return {r[0]: int(r[1]) for r in rows}

    def get_product(self, product_id: str) -> Product | None:
        row = self.uow.execute(
            select(t.products).where(t.products.c.id == product_id, self._mine(t.products))).first()
        if row is None:
            return None
        return _product(row, self._free_keys([row.id]).get(row.id, 0) if row.kind == "virtual" else 0)

    def list_products(self, *, kind: str, category_id: str, on_shelf: bool | None, text: str, limit: int,
                      after: tuple[datetime, str] | None) -> list[Product]:
        """Newest first, by (created_at, id) so a cursor is stable while products are added."""
        c = t.products.c
        query = select(t.products).where(self._mine(t.products))
        if kind:
            query = query.where(c.kind == kind)
        if category_id:
            # a top-level category also lists its children's products
            children = select(t.categories.c.id).where(t.categories.c.parent_id == category_id,
                                                      self._mine(t.categories))
            query = query.where(or_(c.category_id == category_id, c.category_id.in_(children)))
        if on_shelf is not None:
            query = query.where(c.on_shelf == on_shelf)
        if text:
            escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(func.lower(c.name).like(f"%{escaped}%", escape="\\"))
        if after is not None:
            at, last_id = after
            query = query.where(or_(c.created_at < at, and_(c.created_at == at, c.id < last_id)))
        rows = list(self.uow.execute(query.order_by(c.created_at.desc(), c.id.desc()).limit(limit)))
        free = self._free_keys([r.id for r in rows if r.kind == "virtual"])
        return [_product(r, free.get(r.id, 0)) for r in rows]

    def update_product(self, product_id: str, values: dict[str, Any]) -> None:
        self.uow.execute(update(t.products).where(t.products.c.id == product_id, self._mine(t.products))
                         .values(updated_at=self.uow.now(), **values))

    def adjust_stock(self, product_id: str, delta: int) -> bool:
        """Add `delta` to a limited product's available stock; False when it would go below zero."""
        c = t.products.c
        result = self.uow.execute(
            update(t.products)
            .where(c.id == product_id, self._mine(t.products), c.stock_available.is_not(None),
                   c.stock_available + delta >= 0)
            .values(stock_available=c.stock_available + delta, updated_at=self.uow.now()))
        return bool(result.rowcount == 1)

    # stock

    def take_stock(self, product_id: str, quantity: int) -> bool:
        """Atomically take `quantity` of a limited product; False when not enough is left (never negative)."""
        taken = self.uow.execute(
            update(t.products)
            .where(t.products.c.id == product_id, self._mine(t.products),
                   t.products.c.stock_available >= quantity)
            .values(stock_available=t.products.c.stock_available - quantity,
                    stock_reserved=t.products.c.stock_reserved + quantity,
                    updated_at=self.uow.now()))
        return bool(taken.rowcount == 1)

    def move_stock(self, product_id: str, *, available_delta: int, reserved_delta: int) -> None:
        values: dict[str, Any] = {"stock_reserved": t.products.c.stock_reserved + reserved_delta,
                                  "updated_at": self.uow.now()}
        if available_delta:
            values["stock_available"] = t.products.c.stock_available + available_delta
        self.uow.execute(update(t.products).where(t.products.c.id == product_id, self._mine(t.products))
                         .values(**values))

    def reservations(self, order_id: str) -> list[Row[Any]]:
        return list(self.uow.execute(
            select(t.stock_reservations).where(t.stock_reservations.c.order_id == order_id,
                                               self._mine(t.stock_reservations))
            .order_by(t.stock_reservations.c.product_id)))

    def add_reservation(self, order_id: str, product_id: str, quantity: int, customer_id: str | None) -> None:
        now = self.uow.now()
        self.uow.execute(insert(t.stock_reservations).values(
            order_id=order_id, product_id=product_id, merchant_id=self.merchant_id, mode=self.mode,
            quantity=quantity, status="reserved", created_at=now, updated_at=now, customer_id=customer_id))

    def set_reservation_status(self, order_id: str, product_id: str, *, expected: str, status: str) -> bool:
        """Move one reservation from `expected` to `status`; False if another transaction moved it first."""
        result = self.uow.execute(
            update(t.stock_reservations)
            .where(t.stock_reservations.c.order_id == order_id, t.stock_reservations.c.product_id == product_id,
                   t.stock_reservations.c.status == expected, self._mine(t.stock_reservations))
            .values(status=status, updated_at=self.uow.now()))
        return bool(result.rowcount == 1)

    def record_move(self, product_id: str, order_id: str | None, delta: int, reason: str, actor: str,
                    note: str = "") -> None:
        self.uow.execute(insert(t.stock_moves).values(
            product_id=product_id, merchant_id=self.merchant_id, mode=self.mode, order_id=order_id, delta=delta,
            reason=reason, actor=actor[:60], note=note[:200], created_at=self.uow.now()))

    def stock_moves(self, product_id: str, limit: int, before_id: int | None) -> list[Row[Any]]:
        c = t.stock_moves.c
        query = select(t.stock_moves).where(c.product_id == product_id, self._mine(t.stock_moves))
        if before_id is not None:
            query = query.where(c.id < before_id)
        return list(self.uow.execute(query.order_by(c.id.desc()).limit(limit)))

    # per-customer purchase limits

    def count_purchase(self, product_id: str, customer_id: str, quantity: int, limit: int) -> bool:
        """Add `quantity` to the customer's count unless it would pass `limit` (conditional, race-free)."""
        pc = t.purchase_counts
        insert_row = self._upsert(pc)
        self.uow.execute(insert_row.values(merchant_id=self.merchant_id, mode=self.mode, product_id=product_id,
                                           customer_id=customer_id, quantity=0).on_conflict_do_nothing())
        result = self.uow.execute(update(pc).where(
            pc.c.product_id == product_id, pc.c.customer_id == customer_id, self._mine(pc),
            pc.c.quantity + quantity <= limit).values(quantity=pc.c.quantity + quantity))
        return bool(result.rowcount == 1)

    def purchased(self, product_id: str, customer_id: str) -> int:
        pc = t.purchase_counts.c
        value = self.uow.execute(select(pc.quantity).where(
            pc.product_id == product_id, pc.customer_id == customer_id, self._mine(t.purchase_counts))).scalar()
        return int(value or 0)

    def uncount_purchase(self, product_id: str, customer_id: str, quantity: int) -> None:
        pc = t.purchase_counts
        self.uow.execute(update(pc).where(pc.c.product_id == product_id, pc.c.customer_id == customer_id,
                                          self._mine(pc)).values(quantity=pc.c.quantity - quantity))

    # card keys

    def add_card_keys(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.uow.execute(insert(t.card_keys),
                             [{**r, "merchant_id": self.merchant_id, "mode": self.mode} for r in rows])

    def known_fingerprints(self, product_id: str, fingerprints: list[str]) -> set[str]:
        k = t.card_keys.c
        found: set[str] = set()
        for start in range(0, len(fingerprints), 500):
            chunk = fingerprints[start:start + 500]
            found.update(self.uow.execute(select(k.fingerprint).where(
                k.product_id == product_id, k.fingerprint.in_(chunk), self._mine(t.card_keys))).scalars())
        return found

    def allocate_card_key(self, product_id: str, order_id: str, unit_index: int) -> bool:
        """Give the oldest free key to (order, unit): conditional on it still being free, so two
        transactions never get the same key; the unique (order, product, unit) stops a unit getting two."""
        k = t.card_keys.c
        oldest_free = (select(k.id).where(k.product_id == product_id, k.order_id.is_(None), self._mine(t.card_keys))
                       .order_by(k.created_at, k.id).limit(1)
                       # PostgreSQL: skip keys another transaction is taking instead of queueing behind it
                       .with_for_update(skip_locked=True).scalar_subquery())
        result = self.uow.execute(update(t.card_keys).where(k.id == oldest_free, k.order_id.is_(None)).values(
            order_id=order_id, unit_index=unit_index, allocated_at=self.uow.now()))
        return bool(result.rowcount == 1)

    def free_card_keys(self, product_id: str) -> int:
        return self._free_keys([product_id]).get(product_id, 0)

    def allocated_units(self, order_id: str, product_id: str) -> int:
        k = t.card_keys.c
        return int(self.uow.execute(select(func.count()).select_from(t.card_keys).where(
            k.order_id == order_id, k.product_id == product_id, self._mine(t.card_keys))).scalar_one())

    def card_keys_of_order(self, order_id: str) -> list[Row[Any]]:
        k = t.card_keys.c
        return list(self.uow.execute(select(t.card_keys, t.products.c.name.label("product_name"))
                                     .join(t.products, t.products.c.id == k.product_id)
                                     .where(k.order_id == order_id, self._mine(t.card_keys))
                                     .order_by(k.product_id, k.unit_index)))

    def card_keys_of_product(self, product_id: str, limit: int, after: tuple[datetime, str] | None) -> list[Row[Any]]:
        k = t.card_keys.c
        query = select(t.card_keys).where(k.product_id == product_id, self._mine(t.card_keys))
        if after is not None:
            query = query.where(or_(k.created_at > after[0], and_(k.created_at == after[0], k.id > after[1])))
        return list(self.uow.execute(query.order_by(k.created_at, k.id).limit(limit)))

    # deliveries

    def add_delivery(self, order_id: str, product_id: str, quantity: int, method: str = "card_key",
                     account: str | None = None) -> bool:
        """Record what order-paid owes; False when the order's delivery for this product is already recorded
        (a redelivered event). A row a refund's withdrawal left before order-paid ("awaiting_payment") is
        claimed: it gets the ordered quantity and keeps its withdrawn units. Either way the row stays locked
        (PostgreSQL row lock, SQLite write lock) until commit."""
        d = t.deliveries
        now = self.uow.now()
        for _ in range(GUARD_ATTEMPTS):
            # RETURNING, not rowcount: an ON CONFLICT insert through the session reports rowcount -1 on psycopg.
            # On PostgreSQL an insert racing a withdrawal's insert of the same key waits for it, then conflicts.
            inserted = self.uow.execute(self._upsert(d).values(
                order_id=order_id, product_id=product_id, merchant_id=self.merchant_id, mode=self.mode,
                quantity=quantity, delivered=0, withdrawn=0, status="pending", created_at=now, updated_at=now,
                method=method, account=account).on_conflict_do_nothing().returning(d.c.order_id)).first()
            if inserted is not None:
                return True
            row = self.lock_delivery(order_id, product_id)
            if row is None:
                continue  # the conflicting row was another merchant's or rolled back: try again
            if row.status != AWAITING_PAYMENT:
                return False
            claimed = self._guarded_update(row, quantity=quantity, method=method, account=account,
                                           status="delivered" if row.withdrawn >= quantity else "pending")
            if claimed:
                return True
        raise DeliveryChangedConcurrently(
            "the delivery kept changing while order-paid was handled; it is retried",
            details={"order_id": order_id, "product_id": product_id})

    def lock_delivery(self, order_id: str, product_id: str) -> Row[Any] | None:
        """The delivery row as last committed, locked until commit on PostgreSQL (SQLite's BEGIN IMMEDIATE
        already serialises writers), so a delivery and a withdrawal of the same units decide one at a time."""
        d = t.deliveries.c
        return self.uow.execute(select(t.deliveries).where(
            d.order_id == order_id, d.product_id == product_id, self._mine(t.deliveries)).with_for_update()).first()

    def _guarded_update(self, row: Row[Any], **values: Any) -> bool:
        """Update the delivery only if it is still as read (quantity, delivered, withdrawn, status); False when
        another transaction changed it first, so the caller re-reads and decides again."""
        d = t.deliveries.c
        result = self.uow.execute(update(t.deliveries).where(
            d.order_id == row.order_id, d.product_id == row.product_id, self._mine(t.deliveries),
            d.quantity == row.quantity, d.delivered == row.delivered, d.withdrawn == row.withdrawn,
            d.status == row.status).values(updated_at=self.uow.now(), **values))
        return bool(result.rowcount == 1)

    def add_withdrawn_placeholder(self, order_id: str, product_id: str, units: int, method: str) -> bool:
        """A withdrawal before order-paid: a row owing nothing yet with `units` withdrawn, for the delivery to
        claim. False when a delivery row appeared meanwhile (decide on that one instead)."""
        d = t.deliveries
        now = self.uow.now()
        inserted = self.uow.execute(self._upsert(d).values(
            order_id=order_id, product_id=product_id, merchant_id=self.merchant_id, mode=self.mode, quantity=0,
            delivered=0, withdrawn=units, status=AWAITING_PAYMENT, created_at=now, updated_at=now,
            method=method).on_conflict_do_nothing().returning(d.c.order_id)).first()
        return inserted is not None

    def withdraw_units(self, row: Row[Any], units: int) -> bool:
        """Add `units` to the delivery's withdrawn units, guarded on the row as read."""
        withdrawn = row.withdrawn + units
        if row.status == AWAITING_PAYMENT:
            status = AWAITING_PAYMENT
        else:
            status = "delivered" if row.delivered >= row.quantity - withdrawn else "pending"
        return self._guarded_update(row, withdrawn=withdrawn, status=status)

    def restore_units(self, row: Row[Any], units: int) -> bool:
        """Take `units` off the delivery's withdrawn units (owed again), guarded on the row as read; a paid
        delivery that now owes more than it delivered is pending again."""
        withdrawn = row.withdrawn - units
        if row.status == AWAITING_PAYMENT:
            status = AWAITING_PAYMENT
        else:
            status = "delivered" if row.delivered >= row.quantity - withdrawn else "pending"
        return self._guarded_update(row, withdrawn=withdrawn, status=status)

    def complete_top_up(self, row: Row[Any], supplier_reference: str) -> bool:
        """The supplier topped up what the order still owes (quantity - withdrawn); guarded on the row as read."""
        return self._guarded_update(row, delivered=row.quantity - row.withdrawn, status="delivered",
                                    supplier_reference=supplier_reference)

    def set_delivered(self, row: Row[Any], delivered: int) -> bool:
        """`delivered` units have their keys; done once they cover quantity - withdrawn. Guarded on the row."""
        status = "delivered" if delivered >= row.quantity - row.withdrawn else "pending"
        return self._guarded_update(row, delivered=delivered, status=status)

    def deliveries(self, order_id: str) -> list[Row[Any]]:
        d = t.deliveries.c
        return list(self.uow.execute(
            select(t.deliveries, t.products.c.name.label("product_name"))
            .join(t.products, t.products.c.id == d.product_id)
            .where(d.order_id == order_id, d.status != AWAITING_PAYMENT, self._mine(t.deliveries))
            .order_by(d.product_id)))

    def pending_deliveries(self, product_id: str) -> list[Row[Any]]:
        d = t.deliveries.c
        return list(self.uow.execute(select(t.deliveries).where(
            d.product_id == product_id, d.status == "pending", d.method == "card_key", self._mine(t.deliveries))
            .order_by(d.created_at)))

    # withdrawals (a refund's undelivered units)

    def claim_withdrawal(self, refund_id: str, order_id: str, product_id: str, units: int) -> bool:
        """Record the refund's withdrawal of `units`; False when this refund already withdrew this product."""
        w = t.delivery_withdrawals
        inserted = self.uow.execute(self._upsert(w).values(
            refund_id=refund_id, product_id=product_id, order_id=order_id, merchant_id=self.merchant_id,
            mode=self.mode, quantity=units, created_at=self.uow.now()).on_conflict_do_nothing()
            .returning(w.c.refund_id)).first()
        return inserted is not None

    def withdrawals_of_refund(self, refund_id: str, *, lock: bool = False) -> dict[str, int]:
        """Product -> units the refund withdrew and did not give back. `lock`: the rows stay locked until commit
        on PostgreSQL, so a restock and a restore of the same refund decide one at a time."""
        w = t.delivery_withdrawals.c
        query = select(w.product_id, w.quantity).where(
            w.refund_id == refund_id, w.restored_at.is_(None), self._mine(t.delivery_withdrawals))
        rows = self.uow.execute(query.with_for_update() if lock else query)
        return {r.product_id: int(r.quantity) for r in rows}

    def withdrawal_records(self, refund_id: str, order_id: str | None = None, *,
                           lock: bool = False) -> list[Row[Any]]:
        """The refund's withdrawal rows, given back or not, by product id (locked like withdrawals_of_refund)."""
        w = t.delivery_withdrawals.c
        query = select(t.delivery_withdrawals).where(w.refund_id == refund_id, self._mine(t.delivery_withdrawals))
        if order_id is not None:
            query = query.where(w.order_id == order_id)
        query = query.order_by(w.product_id)
        return list(self.uow.execute(query.with_for_update() if lock else query))

    def mark_withdrawal_restored(self, refund_id: str, product_id: str) -> bool:
        """The refund's withdrawal of this product was given back; False when it was already."""
        w = t.delivery_withdrawals.c
        result = self.uow.execute(update(t.delivery_withdrawals).where(
            w.refund_id == refund_id, w.product_id == product_id, w.restored_at.is_(None),
            self._mine(t.delivery_withdrawals)).values(restored_at=self.uow.now()))
        return bool(result.rowcount == 1)

    def refund_restocked_products(self, refund_id: str) -> set[str]:
        """Products the refund's order-refunded restock gave back already."""
        r = t.refund_restocks.c
        return {row.product_id for row in self.uow.execute(select(r.product_id).where(
            r.refund_id == refund_id, self._mine(t.refund_restocks)))}

    # refunds

    def claim_refund_restock(self, refund_id: str, product_id: str, quantity: int) -> bool:
        r = t.refund_restocks
        insert_row = self._upsert(r)
        inserted = self.uow.execute(insert_row.values(
            refund_id=refund_id, product_id=product_id, merchant_id=self.merchant_id, mode=self.mode,
            quantity=quantity, created_at=self.uow.now()).on_conflict_do_nothing().returning(r.c.refund_id)).first()
        return inserted is not None

    # import jobs

    def add_import_job(self, job_id: str, status: str, rows: int, errors: list[dict[str, Any]] | None) -> None:
        self.uow.execute(insert(t.import_jobs).values(
            id=job_id, merchant_id=self.merchant_id, mode=self.mode, status=status, rows=rows,
            errors=json.dumps(errors, ensure_ascii=False) if errors is not None else None,
            created_at=self.uow.now()))

    def get_import_job(self, job_id: str) -> Row[Any] | None:
        return self.uow.execute(select(t.import_jobs).where(
            t.import_jobs.c.id == job_id, self._mine(t.import_jobs))).first()

    def category_ids(self) -> set[str]:
        return set(self.uow.execute(select(t.categories.c.id).where(self._mine(t.categories))).scalars())

    # product images

    def lock_product(self, product_id: str) -> bool:
        """Touch the product's row, which locks it until commit: a product's image changes run one at a time
        (PostgreSQL row lock, SQLite write lock), so count-then-insert cannot exceed the limit."""
        result = self.uow.execute(update(t.products).where(t.products.c.id == product_id, self._mine(t.products))
                                  .values(updated_at=self.uow.now()))
        return result.rowcount == 1

    _IMAGE_META = (t.product_images.c.id, t.product_images.c.product_id, t.product_images.c.content_type,
                   t.product_images.c.size, t.product_images.c.width, t.product_images.c.height,
                   t.product_images.c.sha256, t.product_images.c.position, t.product_images.c.created_at)

    def images_of(self, product_ids: list[str]) -> list[Row[Any]]:
        """Metadata (not the bytes) of the products' images, by product then position."""
        if not product_ids:
            return []
        c = t.product_images.c
        return list(self.uow.execute(select(*self._IMAGE_META).where(
            c.product_id.in_(product_ids), self._mine(t.product_images)).order_by(c.product_id, c.position, c.id)))

    def image_by_sha256(self, product_id: str, sha256: str) -> Row[Any] | None:
        c = t.product_images.c
        return self.uow.execute(select(*self._IMAGE_META).where(
            c.product_id == product_id, c.sha256 == sha256, self._mine(t.product_images))).first()

    def get_image(self, product_id: str, image_id: str, *, with_bytes: bool) -> Row[Any] | None:
        c = t.product_images.c
        columns = (*self._IMAGE_META, c.bytes) if with_bytes else self._IMAGE_META
        return self.uow.execute(select(*columns).where(
            c.id == image_id, c.product_id == product_id, self._mine(t.product_images))).first()

    def image_count_and_last_position(self, product_id: str) -> tuple[int, int]:
        c = t.product_images.c
        count, last = self.uow.execute(select(func.count(), func.max(c.position)).where(
            c.product_id == product_id, self._mine(t.product_images))).one()
        return int(count), -1 if last is None else int(last)

    def add_image(self, row: dict[str, Any]) -> None:
        self.uow.execute(insert(t.product_images).values(merchant_id=self.merchant_id, mode=self.mode, **row))

    def delete_image(self, product_id: str, image_id: str) -> bool:
        c = t.product_images.c
        result = self.uow.execute(delete(t.product_images).where(
            c.id == image_id, c.product_id == product_id, self._mine(t.product_images)))
        return result.rowcount == 1

