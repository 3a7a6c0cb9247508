"""Reads and writes of campaigns for one merchant and mode, mapping them to domain objects."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, insert, select
from sqlalchemy.engine import Row

from weika_kit.context import Caller
from weika_kit.db import UnitOfWork
from weika_marketing.adapters import tables as t
from weika_marketing.domain.model import Campaign, Tier


def tiers_to_json(tiers: tuple[Tier, ...]) -> str:
    return json.dumps([{"threshold": tier.threshold, "reduction": tier.reduction} for tier in tiers])


def tiers_from_json(raw: str) -> tuple[Tier, ...]:
    return tuple(Tier(threshold=item["threshold"], reduction=item["reduction"]) for item in json.loads(raw))


def _utc(value: datetime) -> datetime:
    # The kit's UTCDateTime comes back naive from SQLite (the dialect swaps in its own DATETIME type and
    # drops the override); values are stored in UTC, so the zone is put back here. PostgreSQL's is aware.
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _campaign(row: Row[Any]) -> Campaign:
    return Campaign(
        id=row.id, merchant_id=row.merchant_id, mode=row.mode, kind=row.kind, name=row.name,
        tiers=tiers_from_json(row.tiers), stackable=row.stackable, starts_at=_utc(row.starts_at),
        ends_at=_utc(row.ends_at), active=row.active, created_at=_utc(row.created_at))


class MarketingRepository:
    def __init__(self, uow: UnitOfWork, caller: Caller):
        self.uow = uow
        self.merchant_id = caller.merchant_id
        self.mode = caller.mode

    def _mine(self) -> ColumnElement[bool]:
        return (t.campaigns.c.merchant_id == self.merchant_id) & (t.campaigns.c.mode == self.mode)

    def add_campaign(self, campaign: Campaign) -> None:
        self.uow.execute(insert(t.campaigns).values(
            id=campaign.id, merchant_id=self.merchant_id, mode=self.mode, kind=campaign.kind, name=campaign.name,
            tiers=tiers_to_json(campaign.tiers), stackable=campaign.stackable, starts_at=campaign.starts_at,
            ends_at=campaign.ends_at, active=campaign.active, created_at=campaign.created_at))

    def list_campaigns(self) -> list[Campaign]:
        rows = self.uow.execute(select(t.campaigns).where(self._mine())
                                .order_by(t.campaigns.c.created_at, t.campaigns.c.id))
        return [_campaign(row) for row in rows]

    def live_campaigns(self, now: datetime) -> list[Campaign]:
        """Active campaigns whose window [starts_at, ends_at) holds `now`, oldest first."""
        rows = self.uow.execute(
            select(t.campaigns)
            .where(self._mine(), t.campaigns.c.active.is_(True), t.campaigns.c.starts_at <= now,
                   t.campaigns.c.ends_at > now)
            .order_by(t.campaigns.c.created_at, t.campaigns.c.id))
        return [_campaign(row) for row in rows]
