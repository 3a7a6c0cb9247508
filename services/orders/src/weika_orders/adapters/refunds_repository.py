"""Reads and writes of refunds and their lines, for one merchant and mode."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Row

from weika_kit.context import Caller
from weika_kit.db import UnitOfWork
from weika_orders.adapters import tables as t


class RefundsRepository:
    def __init__(self, uow: UnitOfWork, caller: Caller):
        self.uow = uow
        self.merchant_id = caller.merchant_id
        self.mode = caller.mode

    def _mine(self, table: t.Table):  # type: ignore[no-untyped-def]
        return (table.c.merchant_id == self.merchant_id) & (table.c.mode == self.mode)

    def add(self, refund_id: str, order_id: str, previous_status: str, amount: int, reason: str,
            lines: dict[str, tuple[int, int]]) -> None:
        """A refund in flight; `lines` maps product id to (quantity, line_amount)."""
        now = self.uow.now()
        self.uow.execute(insert(t.refunds).values(
            id=refund_id, merchant_id=self.merchant_id, mode=self.mode, order_id=order_id, status="requested",
            previous_status=previous_status, amount=amount, reason=reason, voided_coupon_ids="[]", created_at=now,
            updated_at=now))
        self.uow.execute(insert(t.refund_lines), [
            {"refund_id": refund_id, "product_id": product_id, "quantity": quantity, "line_amount": line_amount}
            for product_id, (quantity, line_amount) in sorted(lines.items())])

    def in_flight(self, order_id: str) -> Row[Any] | None:
        r = t.refunds
        return self.uow.execute(select(r).where(r.c.order_id == order_id, r.c.status == "requested",
                                                self._mine(r))).first()

    def get(self, refund_id: str) -> Row[Any] | None:
        r = t.refunds
        return self.uow.execute(select(r).where(r.c.id == refund_id, self._mine(r))).first()

    def lines(self, refund_id: str) -> dict[str, int]:
        rl = t.refund_lines
        return {r.product_id: r.quantity for r in self.uow.execute(select(rl).where(rl.c.refund_id == refund_id))}

    def refunded_quantities(self, order_id: str) -> dict[str, int]:
        """Per product, what refunds that succeeded or are in flight have taken."""
        r, rl = t.refunds, t.refund_lines
        rows = self.uow.execute(
            select(rl.c.product_id, func.sum(rl.c.quantity)).join(r, r.c.id == rl.c.refund_id)
            .where(r.c.order_id == order_id, r.c.status.in_(("requested", "succeeded")), self._mine(r))
            .group_by(rl.c.product_id))
        return {row[0]: int(row[1]) for row in rows}

    def refunded_amount(self, order_id: str) -> int:
        r = t.refunds
        return int(self.uow.execute(select(func.coalesce(func.sum(r.c.amount), 0)).where(
            r.c.order_id == order_id, r.c.status == "succeeded", self._mine(r))).scalar_one())

    def finish(self, refund_id: str, status: str, voided_coupon_ids: list[str]) -> bool:
        """requested -> succeeded | refused, once."""
        r = t.refunds
        result = self.uow.execute(update(r).where(r.c.id == refund_id, r.c.status == "requested", self._mine(r))
                                  .values(status=status, voided_coupon_ids=json.dumps(voided_coupon_ids),
                                          updated_at=self.uow.now()))
        return bool(result.rowcount == 1)
