"""Reads and writes of payment channel settings, payment intents and provider notifications.

`PaymentsRepository` filters every query by the caller's merchant and mode. `channel_by_account` is the
one lookup across tenants: a provider's notification names our account id (in the notify URL we gave it),
and only that row tells which merchant and mode the notification is for.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
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

    def notifications(self, out_trade_no: str) -> list[Row[Any]]:
        pn = t.payment_notifications
        return list(self.uow.execute(select(pn).where(pn.c.out_trade_no == out_trade_no, self._mine(pn))
                                     .order_by(pn.c.id)))


def channel_by_account(uow: UnitOfWork, account_id: str, channel: str) -> Row[Any] | None:
    pc = t.payment_channels
    return uow.execute(select(pc).where(pc.c.id == account_id, pc.c.channel == channel)).first()


def record_notification(uow: UnitOfWork, *, merchant_id: str, mode: str, channel: str, account_id: str,
                        out_trade_no: str, notification_id: str, transaction_id: str, amount: int | None,
                        verdict: str, reason: str) -> None:
    """One row per notification received, whatever its verdict (tenant "" when the account was unknown)."""
    uow.execute(insert(t.payment_notifications).values(
        merchant_id=merchant_id, mode=mode, channel=channel, account_id=account_id[:40],
        out_trade_no=out_trade_no[:64], notification_id=notification_id[:64],
        provider_transaction_id=transaction_id[:64], amount=amount, verdict=verdict, reason=reason[:64],
        received_at=uow.now()))
