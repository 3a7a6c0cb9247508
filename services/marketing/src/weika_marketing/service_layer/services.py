"""Marketing use cases: each runs in one unit of work, for one caller."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from weika_kit import ids
from weika_kit.context import Caller
from weika_kit.db import Database
from weika_marketing.adapters.repository import MarketingRepository
from weika_marketing.domain import model
from weika_marketing.domain.model import Campaign, Quote, QuoteLine, Tier


@dataclass(frozen=True)
class NewCampaign:
    kind: str
    name: str
    tiers: tuple[Tier, ...]
    stackable: bool
    starts_at: datetime | None
    ends_at: datetime | None


def create_campaign(db: Database, caller: Caller, new: NewCampaign) -> Campaign:
    with db.unit_of_work() as uow:
        campaign = Campaign(
            id=ids.new_id("cmp"), merchant_id=caller.merchant_id, mode=caller.mode, kind=new.kind,
            name=new.name.strip(), tiers=new.tiers, stackable=new.stackable, starts_at=new.starts_at,
            ends_at=new.ends_at, active=True, created_at=uow.now())
        campaign.validate()
        MarketingRepository(uow, caller).add_campaign(campaign)
        uow.commit()
    return campaign


def list_campaigns(db: Database, caller: Caller) -> list[Campaign]:
    with db.unit_of_work() as uow:
        return MarketingRepository(uow, caller).list_campaigns()


def quote_price(db: Database, caller: Caller, lines: list[QuoteLine]) -> Quote:
    # Refuse bad input before touching the database.
    model.validate_lines(lines)
    with db.unit_of_work() as uow:
        now = uow.now()
        campaigns = MarketingRepository(uow, caller).live_campaigns(now)
    return model.quote(lines, campaigns, now)
