"""Reads and writes of redemption rows for one merchant and mode, mapping them to domain objects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row

from weika_kit import crypto
from weika_kit.context import Caller
from weika_kit.db import UnitOfWork
from weika_redemption.adapters import tables as t
from weika_redemption.domain.model import ISSUED, REDEEMED, VOIDED, Coupon, Redemption


def _utc(value: datetime) -> datetime:
    """Workaround: the kit's UTCDateTime reads back naive on SQLite (its result processor is lost when the
    type is adapted to the dialect), so put the zone back here; PostgreSQL already returns it."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _coupon(row: Row[Any]) -> Coupon:
    return Coupon(
        id=row.id, merchant_id=row.merchant_id, mode=row.mode, order_id=row.order_id, product_id=row.product_id,
        unit_index=row.unit_index, category_id=row.category_id, customer_id=row.customer_id, status=row.status,
        face_value=row.face_value, threshold=row.threshold, store_ids=tuple(row.store_ids),
        redeem_methods=tuple(row.redeem_methods), valid_from=_utc(row.valid_from),
        valid_until=_utc(row.valid_until), issued_at=_utc(row.issued_at),
        redeemed_at=_utc(row.redeemed_at) if row.redeemed_at else None, redeemed_store_id=row.redeemed_store_id,
        redeemed_by=row.redeemed_by)


class RedemptionRepository:
    def __init__(self, uow: UnitOfWork, caller: Caller):
        self.uow = uow
        self.merchant_id = caller.merchant_id
        self.mode = caller.mode

    def _mine(self, table: t.Table):  # type: ignore[no-untyped-def]
        return (table.c.merchant_id == self.merchant_id) & (table.c.mode == self.mode)

    def add_coupon_once(self, coupon: Coupon, code: str, fingerprint: str) -> bool:
        """Insert the coupon unless its (order, product, unit) already has one; True when this call inserted it.

        INSERT .. ON CONFLICT DO NOTHING on the unique unit: a concurrent twin waits for the first insert to
        commit and then inserts nothing, so no read-then-write race can issue a unit twice.
        """
        dialect = postgresql if self.uow.db.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(t.coupons).values(
            id=coupon.id, merchant_id=self.merchant_id, mode=self.mode, order_id=coupon.order_id,
            product_id=coupon.product_id, unit_index=coupon.unit_index, category_id=coupon.category_id,
            customer_id=coupon.customer_id, code_fingerprint=fingerprint, code_encrypted=crypto.encrypt(code),
            status=coupon.status, face_value=coupon.face_value, threshold=coupon.threshold,
            store_ids=list(coupon.store_ids), redeem_methods=list(coupon.redeem_methods),
            valid_from=coupon.valid_from, valid_until=coupon.valid_until, issued_at=coupon.issued_at,
        ).on_conflict_do_nothing(index_elements=["order_id", "product_id", "unit_index"]).returning(t.coupons.c.id)
        # RETURNING, not rowcount: drivers report -1 for some INSERTs (psycopg through SQLAlchemy's batching).
        return self.uow.execute(statement).first() is not None

    def coupons_of_order(self, order_id: str, *, after: tuple[str, int] | None,
                         limit: int) -> list[tuple[Coupon, str]]:
        """One page of the order's coupons with their decrypted codes, by (product_id, unit_index)."""
        c = t.coupons.c
        query = select(t.coupons).where(c.order_id == order_id, self._mine(t.coupons))
        if after is not None:
            product_id, unit_index = after
            query = query.where(or_(c.product_id > product_id,
                                    and_(c.product_id == product_id, c.unit_index > unit_index)))
        rows = self.uow.execute(query.order_by(c.product_id, c.unit_index).limit(limit))
        return [(_coupon(row), crypto.decrypt(row.code_encrypted)) for row in rows]

    def find_by_fingerprint(self, fingerprint: str) -> Coupon | None:
        row = self.uow.execute(select(t.coupons).where(
            t.coupons.c.code_fingerprint == fingerprint, self._mine(t.coupons))).first()
        return _coupon(row) if row else None

    def get_coupon(self, coupon_id: str) -> Coupon | None:
        row = self.uow.execute(
            select(t.coupons).where(t.coupons.c.id == coupon_id, self._mine(t.coupons))).first()
        return _coupon(row) if row else None

    def mark_redeemed(self, coupon_id: str, *, at: datetime, store_id: str, operator_id: str) -> bool:
        """issued → redeemed, only if still issued: False means another counter redeemed it first."""
        result = self.uow.execute(
            update(t.coupons)
            .where(t.coupons.c.id == coupon_id, t.coupons.c.status == ISSUED, self._mine(t.coupons))
            .values(status=REDEEMED, redeemed_at=at, redeemed_store_id=store_id, redeemed_by=operator_id))
        return bool(result.rowcount == 1)

    def coupons_of_order_product(self, order_id: str, product_id: str) -> list[Coupon]:
        """The order's coupons of one product, last unit first (a refund gives back the last units sold)."""
        c = t.coupons.c
        rows = self.uow.execute(select(t.coupons).where(c.order_id == order_id, c.product_id == product_id,
                                                        self._mine(t.coupons)).order_by(c.unit_index.desc()))
        return [_coupon(row) for row in rows]

    def mark_voided(self, coupon_id: str) -> bool:
        """issued → voided, only if still issued: False means a counter redeemed it first."""
        result = self.uow.execute(
            update(t.coupons).where(t.coupons.c.id == coupon_id, t.coupons.c.status == ISSUED, self._mine(t.coupons))
            .values(status=VOIDED))
        return bool(result.rowcount == 1)

    def add_void(self, refund_id: str, coupon: Coupon, at: datetime) -> None:
        self.uow.execute(insert(t.coupon_voids).values(
            refund_id=refund_id, coupon_id=coupon.id, merchant_id=self.merchant_id, mode=self.mode,
            order_id=coupon.order_id, voided_at=at))

    def voids_of_refund(self, refund_id: str) -> list[str]:
        v = t.coupon_voids
        return [r.coupon_id for r in self.uow.execute(
            select(v.c.coupon_id).where(v.c.refund_id == refund_id, self._mine(v)).order_by(v.c.coupon_id))]

    def add_redemption(self, redemption: Redemption) -> None:
        self.uow.execute(insert(t.redemptions).values(
            id=redemption.id, coupon_id=redemption.coupon_id, merchant_id=self.merchant_id, mode=self.mode,
            store_id=redemption.store_id, operator_id=redemption.operator_id,
            order_amount=redemption.order_amount, face_value=redemption.face_value,
            redeemed_at=redemption.redeemed_at))

    def add_attempt(self, *, fingerprint: str, coupon_id: str | None, store_id: str, operator_id: str,
                    device_id: str, result: str) -> None:
        # Truncated to the columns: a refused over-long field must still leave its trace.
        self.uow.execute(insert(t.redemption_attempts).values(
            merchant_id=self.merchant_id, mode=self.mode, code_fingerprint=fingerprint, coupon_id=coupon_id,
            store_id=store_id[:40], operator_id=operator_id[:60], device_id=device_id[:100], result=result[:40],
            at=self.uow.now()))
