"""Reads and writes of redemption rows for one merchant and mode, mapping them to domain objects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, case, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row

from weika_kit import crypto
from weika_kit.context import Caller
from weika_kit.db import UnitOfWork
from weika_redemption.adapters import tables as t
from weika_redemption.domain.model import ISSUED, REDEEMED, VOIDED, Attempt, Coupon, Redemption, UsageWindow


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
        redeemed_by=row.redeemed_by,
        usage_windows=tuple(UsageWindow(tuple(w["weekdays"]), w["start_hour"], w["end_hour"])
                            for w in row.usage_windows or ()),
        uses_total=row.uses_total, uses_left=row.uses_left)


def _redemption(row: Row[Any]) -> Redemption:
    return Redemption(
        id=row.id, coupon_id=row.coupon_id, store_id=row.store_id, operator_id=row.operator_id,
        order_amount=row.order_amount, face_value=row.face_value, redeemed_at=_utc(row.redeemed_at),
        device_id=row.device_id or "", reversed_at=_utc(row.reversed_at) if row.reversed_at else None,
        reversed_by=row.reversed_by or "", reversal_reason=row.reversal_reason or "")


def _attempt(row: Row[Any]) -> Attempt:
    return Attempt(id=row.id, coupon_id=row.coupon_id, store_id=row.store_id, operator_id=row.operator_id,
                   device_id=row.device_id, result=row.result, at=_utc(row.at), code_fingerprint=row.code_fingerprint)


class RedemptionRepository:
    def __init__(self, uow: UnitOfWork, caller: Caller):
        self.uow = uow
        self.merchant_id = caller.merchant_id
        self.mode = caller.mode
        self.store_ids = tuple(caller.store_ids)  # store staff see their stores' history only

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
            usage_windows=[w.as_json() for w in coupon.usage_windows], uses_total=coupon.uses_total,
            uses_left=coupon.uses_left,
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

    def coupon_with_code(self, coupon_id: str) -> tuple[Coupon, str] | None:
        row = self.uow.execute(
            select(t.coupons).where(t.coupons.c.id == coupon_id, self._mine(t.coupons))).first()
        return (_coupon(row), crypto.decrypt(row.code_encrypted)) if row else None

    def get_coupon(self, coupon_id: str) -> Coupon | None:
        row = self.uow.execute(
            select(t.coupons).where(t.coupons.c.id == coupon_id, self._mine(t.coupons))).first()
        return _coupon(row) if row else None

    def mark_redeemed(self, coupon_id: str, *, at: datetime, store_id: str, operator_id: str) -> bool:
        """Use one use, only if one is left: False means other counters used the last one first.

        One statement: `uses_left = uses_left - 1 WHERE uses_left > 0 AND status = 'issued'`; the row lock makes
        concurrent counters queue, and each re-evaluates the condition on the committed row (PostgreSQL's
        READ COMMITTED re-check; SQLite serialises writers), so N uses are never N+1. The last use flips the
        status to redeemed (the CASE reads the row's value before this update).
        """
        c = t.coupons.c
        result = self.uow.execute(
            update(t.coupons)
            .where(c.id == coupon_id, c.status == ISSUED, c.uses_left > 0, self._mine(t.coupons))
            .values(uses_left=c.uses_left - 1, status=case((c.uses_left <= 1, REDEEMED), else_=ISSUED),
                    redeemed_at=at, redeemed_store_id=store_id, redeemed_by=operator_id))
        return bool(result.rowcount == 1)

    def restore_use(self, coupon_id: str) -> bool:
        """Give one use back after a reversal (the coupon is issued again); False when it was voided meanwhile."""
        c = t.coupons.c
        result = self.uow.execute(
            update(t.coupons)
            .where(c.id == coupon_id, c.status.in_((ISSUED, REDEEMED)), c.uses_left < c.uses_total,
                   self._mine(t.coupons))
            .values(uses_left=c.uses_left + 1, status=ISSUED, redeemed_at=None, redeemed_store_id=None,
                    redeemed_by=None))
        return bool(result.rowcount == 1)

    def get_redemption(self, redemption_id: str) -> Redemption | None:
        row = self.uow.execute(select(t.redemptions).where(
            t.redemptions.c.id == redemption_id, self._mine(t.redemptions))).first()
        return _redemption(row) if row else None

    def mark_reversed(self, redemption_id: str, *, at: datetime, operator_id: str, reason: str) -> bool:
        """Only a redemption not yet reversed: False means it was reversed already (or just now, elsewhere)."""
        r = t.redemptions.c
        result = self.uow.execute(
            update(t.redemptions)
            .where(r.id == redemption_id, r.reversed_at.is_(None), self._mine(t.redemptions))
            .values(reversed_at=at, reversed_by=operator_id, reversal_reason=reason))
        return bool(result.rowcount == 1)

    def add_reversal(self, redemption: Redemption, *, at: datetime, operator_id: str, reason: str) -> None:
        self.uow.execute(insert(t.redemption_reversals).values(
            redemption_id=redemption.id, coupon_id=redemption.coupon_id, merchant_id=self.merchant_id,
            mode=self.mode, operator_id=operator_id, reason=reason, reversed_at=at))

    def reversal_window_minutes(self) -> int | None:
        s = t.redemption_settings
        return self.uow.execute(select(s.c.reversal_window_minutes).where(self._mine(s))).scalar_one_or_none()

    def put_reversal_window_minutes(self, minutes: int, *, at: datetime, by: str) -> None:
        dialect = postgresql if self.uow.db.engine.dialect.name == "postgresql" else sqlite
        values = {"reversal_window_minutes": minutes, "updated_at": at, "updated_by": by}
        self.uow.execute(dialect.insert(t.redemption_settings).values(
            merchant_id=self.merchant_id, mode=self.mode, **values,
        ).on_conflict_do_update(index_elements=["merchant_id", "mode"], set_=values))

    def list_redemptions(self, *, store_id: str, operator_id: str, start: datetime | None, end: datetime | None,
                         after: tuple[datetime, str] | None, limit: int) -> list[Redemption]:
        """Newest first by (redeemed_at, id); `after` is the last row of the previous page."""
        r = t.redemptions.c
        query = select(t.redemptions).where(self._mine(t.redemptions))
        if self.store_ids:
            query = query.where(r.store_id.in_(self.store_ids))
        if store_id:
            query = query.where(r.store_id == store_id)
        if operator_id:
            query = query.where(r.operator_id == operator_id)
        if start is not None:
            query = query.where(r.redeemed_at >= start)
        if end is not None:
            query = query.where(r.redeemed_at < end)
        if after is not None:
            at, last_id = after
            query = query.where(or_(r.redeemed_at < at, and_(r.redeemed_at == at, r.id < last_id)))
        rows = self.uow.execute(query.order_by(r.redeemed_at.desc(), r.id.desc()).limit(limit))
        return [_redemption(row) for row in rows]

    def list_attempts(self, *, store_id: str, operator_id: str, start: datetime | None, end: datetime | None,
                      after_id: int | None, limit: int) -> list[Attempt]:
        """Newest first by id (ids grow with time)."""
        a = t.redemption_attempts.c
        query = select(t.redemption_attempts).where(self._mine(t.redemption_attempts))
        if self.store_ids:
            query = query.where(a.store_id.in_(self.store_ids))
        if store_id:
            query = query.where(a.store_id == store_id)
        if operator_id:
            query = query.where(a.operator_id == operator_id)
        if start is not None:
            query = query.where(a.at >= start)
        if end is not None:
            query = query.where(a.at < end)
        if after_id is not None:
            query = query.where(a.id < after_id)
        rows = self.uow.execute(query.order_by(a.id.desc()).limit(limit))
        return [_attempt(row) for row in rows]

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
            redeemed_at=redemption.redeemed_at, device_id=redemption.device_id[:100]))

    def add_attempt(self, *, fingerprint: str, coupon_id: str | None, store_id: str, operator_id: str,
                    device_id: str, result: str) -> None:
        # Truncated to the columns: a refused over-long field must still leave its trace.
        self.uow.execute(insert(t.redemption_attempts).values(
            merchant_id=self.merchant_id, mode=self.mode, code_fingerprint=fingerprint, coupon_id=coupon_id,
            store_id=store_id[:40], operator_id=operator_id[:60], device_id=device_id[:100], result=result[:40],
            at=self.uow.now()))
