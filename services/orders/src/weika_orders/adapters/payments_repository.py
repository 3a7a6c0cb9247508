"""Reads and writes of payment channel settings, payment intents, provider notifications and stray payments.

`PaymentsRepository` filters every query by the caller's merchant and mode. `channel_by_account` is the
one lookup across tenants: a provider's notification names our account id (in the notify URL we gave it),
and only that row tells which merchant and mode the notification is for. `stray_refunds_due` is the
sweeper's work list across tenants, `refunds_awaiting_provider` its list of refunds to query.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row

from weika_kit import ids
from weika_kit.context import Caller
from weika_kit.db import UnitOfWork
from weika_orders.adapters import tables as t


class PaymentsRepository:
    def __init__(self, uow: UnitOfWork, caller: Caller):
        self.uow = uow
        self.merchant_id = caller.merchant_id
        self.mode = caller.mode

    def _mine(self, table: t.Table):  # type: ignore[no-untyped-def]
        return (table.c.merchant_id == self.merchant_id) & (table.c.mode == self.mode)

    def _insert(self):  # type: ignore[no-untyped-def]
        return sqlite.insert if self.uow.db.is_sqlite else postgresql.insert

    def save_channel(self, channel: str, account_ref: str, config_encrypted: str, masked_settings: str) -> None:
        """Create or replace the merchant's settings of `channel`; the account id (notify URL) never changes."""
        now = self.uow.now()
        stmt = self._insert()(t.payment_channels).values(
            id=ids.new_id("pch"), merchant_id=self.merchant_id, mode=self.mode, channel=channel,
            account_ref=account_ref, config_encrypted=config_encrypted, masked_settings=masked_settings,
            created_at=now, updated_at=now)
        self.uow.execute(stmt.on_conflict_do_update(
            index_elements=["merchant_id", "mode", "channel"],
            set_={"account_ref": account_ref, "config_encrypted": config_encrypted,
                  "masked_settings": masked_settings, "updated_at": now}))

    def channel(self, channel: str) -> Row[Any] | None:
        pc = t.payment_channels
        return self.uow.execute(select(pc).where(pc.c.channel == channel, self._mine(pc))).first()

    def channels(self) -> list[Row[Any]]:
        pc = t.payment_channels
        return list(self.uow.execute(select(pc).where(self._mine(pc)).order_by(pc.c.channel)))

    def intent(self, order_id: str, channel: str) -> Row[Any] | None:
        pi = t.payment_intents
        return self.uow.execute(select(pi).where(pi.c.order_id == order_id, pi.c.channel == channel,
                                                 self._mine(pi))).first()

    def add_intent(self, order_id: str, channel: str, amount: int, code_url: str, prepay_id: str,
                   qr_code: str) -> None:
        stmt = self._insert()(t.payment_intents).values(
            order_id=order_id, channel=channel, merchant_id=self.merchant_id, mode=self.mode, amount=amount,
            code_url=code_url, prepay_id=prepay_id, qr_code=qr_code, created_at=self.uow.now())
        self.uow.execute(stmt.on_conflict_do_nothing(index_elements=["order_id", "channel"]))

    def add_stray_payment(self, order_id: str, channel: str, transaction_id: str, amount: int) -> str | None:
        """A stray payment to return, pending; None when this provider transaction is recorded already."""
        stray_id, now = ids.new_id("stp"), self.uow.now()
        stmt = self._insert()(t.stray_payments).values(
            id=stray_id, merchant_id=self.merchant_id, mode=self.mode, order_id=order_id[:64], channel=channel,
            transaction_id=transaction_id[:64], amount=amount, status="pending", refund_no=f"{stray_id}_rf",
            attempts=0, last_error=None, created_at=now, updated_at=now)
        # RETURNING, not rowcount: psycopg does not report a reliable rowcount for INSERT .. ON CONFLICT.
        result = self.uow.execute(stmt.on_conflict_do_nothing(index_elements=["channel", "transaction_id"])
                                  .returning(t.stray_payments.c.id))
        return stray_id if result.first() is not None else None

    def stray_payment(self, stray_id: str) -> Row[Any] | None:
        sp = t.stray_payments
        return self.uow.execute(select(sp).where(sp.c.id == stray_id, self._mine(sp))).first()

    def claim_stray_refund(self, stray_id: str, attempts_seen: int, idle_before: datetime | None) -> bool:
        """Take the next refund attempt (attempts + 1) by a conditional update; False when another took it."""
        sp = t.stray_payments
        condition = [sp.c.id == stray_id, sp.c.status == "pending", sp.c.attempts == attempts_seen, self._mine(sp)]
        if idle_before is not None:
            condition.append(sp.c.updated_at < idle_before)
        result = self.uow.execute(update(sp).where(*condition).values(attempts=sp.c.attempts + 1,
                                                                      updated_at=self.uow.now()))
        return bool(result.rowcount == 1)

    def finish_stray_payment(self, stray_id: str, status: str, last_error: str | None) -> bool:
        """pending -> refunded | failed, once."""
        sp = t.stray_payments
        result = self.uow.execute(update(sp).where(sp.c.id == stray_id, sp.c.status == "pending", self._mine(sp))
                                  .values(status=status, last_error=last_error, updated_at=self.uow.now()))
        return bool(result.rowcount == 1)

    def note_stray_refund_error(self, stray_id: str, last_error: str) -> None:
        sp = t.stray_payments
        self.uow.execute(update(sp).where(sp.c.id == stray_id, sp.c.status == "pending", self._mine(sp))
                         .values(last_error=last_error[:200]))

    def refund_money(self, refund_no: str, out_trade_no: str) -> RefundMoney | None:
        """Our refund (or stray payment's return) with this refund number, for this order; None if not ours."""
        r, o, sp = t.refunds, t.orders, t.stray_payments
        row = self.uow.execute(select(r, o.c.channel).join(o, o.c.id == r.c.order_id).where(
            r.c.id == refund_no, r.c.order_id == out_trade_no, self._mine(r))).first()
        if row is not None:
            return RefundMoney("refund", row.id, row.merchant_id, row.mode, row.order_id, row.channel or "", row.id,
                               row.amount, row.provider_status, row.provider_queries, row.provider_checked_at)
        row = self.uow.execute(select(sp).where(sp.c.refund_no == refund_no, sp.c.order_id == out_trade_no,
                                                self._mine(sp))).first()
        return _stray_money(row) if row is not None else None

    def set_refund_money_status(self, money: RefundMoney, status: str, may_be: tuple[str | None, ...]) -> bool:
        """The money status of a refund, by a conditional update from one of `may_be`; False if it was not."""
        table = _money_table(money.kind)
        known = [s for s in may_be if s is not None]
        current = table.c.provider_status.in_(known) if known else None
        if None in may_be:
            current = table.c.provider_status.is_(None) if current is None else or_(
                current, table.c.provider_status.is_(None))
        result = self.uow.execute(update(table).where(table.c.id == money.id, current, self._mine(table))
                                  .values(provider_status=status, provider_checked_at=self.uow.now()))
        return bool(result.rowcount == 1)

    def claim_refund_query(self, money: RefundMoney, idle_before: datetime) -> bool:
        """Take the next query of a processing refund (queries + 1) by a conditional update; False if taken."""
        table = _money_table(money.kind)
        result = self.uow.execute(update(table).where(
            table.c.id == money.id, table.c.provider_status == "processing",
            table.c.provider_queries == money.queries, table.c.provider_checked_at < idle_before, self._mine(table))
            .values(provider_queries=table.c.provider_queries + 1, provider_checked_at=self.uow.now()))
        return bool(result.rowcount == 1)

    def notifications(self, out_trade_no: str) -> list[Row[Any]]:
        pn = t.payment_notifications
        return list(self.uow.execute(select(pn).where(pn.c.out_trade_no == out_trade_no, self._mine(pn))
                                     .order_by(pn.c.id)))


def channel_by_account(uow: UnitOfWork, account_id: str, channel: str) -> Row[Any] | None:
    pc = t.payment_channels
    return uow.execute(select(pc).where(pc.c.id == account_id, pc.c.channel == channel)).first()


def stray_refunds_due(uow: UnitOfWork, idle_before: datetime, limit: int = 100) -> list[Row[Any]]:
    """Every tenant's pending stray payments untouched since before `idle_before`: the sweeper's work list."""
    sp = t.stray_payments
    return list(uow.execute(select(sp).where(sp.c.status == "pending", sp.c.updated_at < idle_before)
                            .order_by(sp.c.updated_at).limit(limit)))


@dataclass(frozen=True)
class RefundMoney:
    """Money on its way back: a refund (its id is the refund number) or a stray payment's return."""

    kind: str  # refund | stray
    id: str
    merchant_id: str
    mode: str
    order_id: str
    channel: str
    refund_no: str
    amount: int
    status: str | None  # the money status, provider_status
    queries: int
    checked_at: datetime | None


def _money_table(kind: str) -> t.Table:
    return t.refunds if kind == "refund" else t.stray_payments


def _stray_money(row: Row[Any]) -> RefundMoney:
    return RefundMoney("stray", row.id, row.merchant_id, row.mode, row.order_id, row.channel, row.refund_no,
                       row.amount, row.provider_status, row.provider_queries, row.provider_checked_at)


def refunds_awaiting_provider(uow: UnitOfWork, idle_before: datetime, limit: int = 100) -> list[RefundMoney]:
    """Every tenant's refunds (and stray payments' returns) still processing at the provider, untouched since
    before `idle_before`: the sweeper's query list."""
    r, o, sp = t.refunds, t.orders, t.stray_payments
    refunds = [RefundMoney("refund", row.id, row.merchant_id, row.mode, row.order_id, row.channel or "", row.id,
                           row.amount, row.provider_status, row.provider_queries, row.provider_checked_at)
               for row in uow.execute(select(r, o.c.channel).join(o, o.c.id == r.c.order_id).where(
                   r.c.provider_status == "processing", r.c.provider_checked_at < idle_before)
                   .order_by(r.c.provider_checked_at).limit(limit))]
    strays = [_stray_money(row) for row in uow.execute(select(sp).where(
        sp.c.provider_status == "processing", sp.c.provider_checked_at < idle_before)
        .order_by(sp.c.provider_checked_at).limit(limit))]
    return refunds + strays


def record_notification(uow: UnitOfWork, *, merchant_id: str, mode: str, channel: str, account_id: str,
                        out_trade_no: str, notification_id: str, transaction_id: str, amount: int | None,
                        verdict: str, reason: str) -> None:
    """One row per notification received, whatever its verdict (tenant "" when the account was unknown)."""
    uow.execute(insert(t.payment_notifications).values(
        merchant_id=merchant_id, mode=mode, channel=channel, account_id=account_id[:40],
        out_trade_no=out_trade_no[:64], notification_id=notification_id[:64],
        provider_transaction_id=transaction_id[:64], amount=amount, verdict=verdict, reason=reason[:64],
        received_at=uow.now()))
