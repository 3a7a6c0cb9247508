"""Reads and writes of catalog rows for one merchant and mode, mapping them to domain objects."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row

from weika_catalog.adapters import tables as t
from weika_catalog.domain.model import CouponRule, Product, Validity
from weika_kit.context import Caller
from weika_kit.db import UnitOfWork


def rule_to_json(rule: CouponRule | None) -> str | None:
    if rule is None:
        return None
    v = rule.validity
    return json.dumps({
        "face_value": rule.face_value, "threshold": rule.threshold, "store_ids": list(rule.store_ids),
        "redeem_methods": list(rule.redeem_methods),
        "validity": {"mode": v.mode, "days": v.days, "starts_after_days": v.starts_after_days,
                     "starts_at": v.starts_at.isoformat() if v.starts_at else None,
                     "ends_at": v.ends_at.isoformat() if v.ends_at else None},
    })


def rule_from_json(raw: str | None) -> CouponRule | None:
    if not raw:
        return None
    data = json.loads(raw)
    v = data["validity"]
    validity = Validity(
        mode=v["mode"], days=v["days"], starts_after_days=v["starts_after_days"],
        starts_at=datetime.fromisoformat(v["starts_at"]) if v["starts_at"] else None,
        ends_at=datetime.fromisoformat(v["ends_at"]) if v["ends_at"] else None)
    return CouponRule(data["face_value"], data["threshold"], tuple(data["store_ids"]),
                      tuple(data["redeem_methods"]), validity)


def _product(row: Row[Any]) -> Product:
    return Product(
        id=row.id, merchant_id=row.merchant_id, mode=row.mode, kind=row.kind, name=row.name,
        description=row.description, category_id=row.category_id, price=row.price, on_shelf=row.on_shelf,
        stock_mode=row.stock_mode, available=row.stock_available, reserved=row.stock_reserved,
        coupon=rule_from_json(row.coupon_rule), created_at=row.created_at, updated_at=row.updated_at)


class CatalogRepository:
    def __init__(self, uow: UnitOfWork, caller: Caller):
        self.uow = uow
        self.merchant_id = caller.merchant_id
        self.mode = caller.mode

    def _mine(self, table: t.Table):  # type: ignore[no-untyped-def]
        return (table.c.merchant_id == self.merchant_id) & (table.c.mode == self.mode)

    def add_category(self, row: dict[str, Any]) -> None:
        self.uow.execute(insert(t.categories).values(merchant_id=self.merchant_id, mode=self.mode, **row))

    def get_category(self, category_id: str) -> Row[Any] | None:
        return self.uow.execute(
            select(t.categories).where(t.categories.c.id == category_id, self._mine(t.categories))).first()

    def list_categories(self) -> list[Row[Any]]:
        return list(self.uow.execute(
            select(t.categories).where(self._mine(t.categories)).order_by(t.categories.c.created_at)))

    def add_product(self, product: Product) -> None:
        self.uow.execute(insert(t.products).values(
            id=product.id, merchant_id=product.merchant_id, mode=product.mode, kind=product.kind,
            name=product.name, description=product.description, category_id=product.category_id,
            price=product.price, on_shelf=product.on_shelf, stock_mode=product.stock_mode,
            stock_available=product.available, stock_reserved=0, coupon_rule=rule_to_json(product.coupon),
            created_at=product.created_at, updated_at=product.updated_at))

    def get_product(self, product_id: str) -> Product | None:
        row = self.uow.execute(
            select(t.products).where(t.products.c.id == product_id, self._mine(t.products))).first()
        return _product(row) if row else None

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

    def add_reservation(self, order_id: str, product_id: str, quantity: int) -> None:
        now = self.uow.now()
        self.uow.execute(insert(t.stock_reservations).values(
            order_id=order_id, product_id=product_id, merchant_id=self.merchant_id, mode=self.mode,
            quantity=quantity, status="reserved", created_at=now, updated_at=now))

    def set_reservation_status(self, order_id: str, product_id: str, *, expected: str, status: str) -> bool:
        """Move one reservation from `expected` to `status`; False if another transaction moved it first."""
        result = self.uow.execute(
            update(t.stock_reservations)
            .where(t.stock_reservations.c.order_id == order_id, t.stock_reservations.c.product_id == product_id,
                   t.stock_reservations.c.status == expected, self._mine(t.stock_reservations))
            .values(status=status, updated_at=self.uow.now()))
        return bool(result.rowcount == 1)

    def record_move(self, product_id: str, order_id: str | None, delta: int, reason: str, actor: str) -> None:
        self.uow.execute(insert(t.stock_moves).values(
            product_id=product_id, merchant_id=self.merchant_id, order_id=order_id, delta=delta, reason=reason,
            actor=actor, created_at=self.uow.now()))
