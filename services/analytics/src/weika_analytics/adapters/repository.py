"""Writes and aggregate reads of the analytics facts for one merchant and mode."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import ColumnElement, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite

from weika_analytics.adapters import tables as t
from weika_analytics.domain.model import (
    Fact,
    IssuedCoupon,
    Overview,
    PaidOrder,
    Redemption,
    RedemptionReversal,
    Refund,
    VoidedCoupon,
    Window,
)
from weika_kit.context import Caller
from weika_kit.db import UnitOfWork

TABLE_OF: dict[type[Fact], Table] = {
    PaidOrder: t.paid_orders,
    IssuedCoupon: t.issued_coupons,
    Redemption: t.redemptions,
    Refund: t.refunds,
    RedemptionReversal: t.redemption_reversals,
    VoidedCoupon: t.voided_coupons,
}


class AnalyticsRepository:
    def __init__(self, uow: UnitOfWork, caller: Caller):
        self.uow = uow
        self.merchant_id = caller.merchant_id
        self.mode = caller.mode

    def _mine(self, table: Table) -> ColumnElement[bool]:
        return (table.c.merchant_id == self.merchant_id) & (table.c.mode == self.mode)

    def _insert_if_absent(self, table: Table, values: dict[str, Any]) -> bool:
        """Insert one row unless its primary key exists; True when inserted.

        ON CONFLICT DO NOTHING decides in the database, so two consumers racing with the same fact
        (under different event ids) cannot both insert it, and neither transaction is aborted.
        """
        dialect = postgresql if self.uow.db.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(table).values(merchant_id=self.merchant_id, mode=self.mode, **values)
        return bool(self.uow.execute(statement.on_conflict_do_nothing()).rowcount == 1)

    def add(self, fact: Fact, event_id: str) -> bool:
        """Record a fact once per natural key; False when it was already recorded."""
        values = {**asdict(fact), "event_id": event_id, "recorded_at": self.uow.now()}  # type: ignore[call-overload]
        lines = values.pop("lines", ())
        if not self._insert_if_absent(TABLE_OF[type(fact)], values):
            return False
        # Lines belong to a paid order: written only by the transaction that recorded the order itself.
        for line_no, line in enumerate(lines, start=1):
            self.uow.execute(t.paid_order_lines.insert().values(
                merchant_id=self.merchant_id, mode=self.mode, order_id=fact.key, line_no=line_no, **line))
        return True

    def _in_window(self, column: Any, window: Window) -> list[ColumnElement[bool]]:
        conditions = []
        if window.start is not None:
            conditions.append(column >= window.start)
        if window.end is not None:
            conditions.append(column < window.end)
        return conditions

    def _aggregate(self, table: Table, time_column: str, value: Any, window: Window) -> Any:
        return (select(value).select_from(table)
                .where(self._mine(table), *self._in_window(table.c[time_column], window))
                .scalar_subquery())

    def overview(self, window: Window) -> Overview:
        count = func.count()
        # One statement of scalar subqueries: every number comes from the same snapshot of the facts.
        row = self.uow.execute(select(
            self._aggregate(t.paid_orders, "paid_at", count, window).label("orders_paid"),
            self._aggregate(t.paid_orders, "paid_at", func.coalesce(func.sum(t.paid_orders.c.paid_amount), 0),
                            window).label("gmv"),
            self._aggregate(t.issued_coupons, "issued_at", count, window).label("coupons_issued"),
            self._aggregate(t.redemptions, "redeemed_at", count, window).label("coupons_redeemed"),
            self._aggregate(t.refunds, "refunded_at", count, window).label("refunds"),
            self._aggregate(t.refunds, "refunded_at", func.coalesce(func.sum(t.refunds.c.refund_amount), 0),
                            window).label("refunded_amount"),
            self._aggregate(t.redemption_reversals, "reversed_at", count, window).label("redemptions_reversed"),
            self._aggregate(t.voided_coupons, "voided_at", count, window).label("coupons_voided"),
        )).one()
        # PostgreSQL sums bigints into numeric; the report speaks integers (fen, counts).
        return Overview(**{name: int(value) for name, value in row._mapping.items()})
