"""On PostgreSQL: campaigns round-trip (JSON tiers, booleans, zoned times) and quotes keep tenancy and windows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from weika_kit.context import Caller
from weika_marketing.service_layer import services

LIVE = Caller("mch_pg_a", "live", role="owner")
TEST = Caller("mch_pg_a", "test", role="owner")
OTHER = Caller("mch_pg_b", "live", role="owner")


@pytest.mark.postgres
def test_postgres_quotes_apply_only_the_callers_live_campaigns(fresh_postgres_database, make_marketing, clock):
    marketing = make_marketing(fresh_postgres_database("marketing"))
    full = marketing.campaign(LIVE, (20000, 5000), (50000, 15000), name="618 满减")
    marketing.campaign(LIVE, (10000, 1000), name="later", starts_at=clock.now + timedelta(hours=1))
    marketing.campaign(TEST, (100, 99), name="rehearsal")
    marketing.campaign(OTHER, (100, 99), name="elsewhere")

    at_200 = marketing.quote(LIVE, 20000)
    at_199_99 = marketing.quote(LIVE, 19999)
    clock.now += timedelta(hours=1)
    later = marketing.quote(LIVE, 50000)

    assert next(c for c in services.list_campaigns(marketing.db, LIVE) if c.id == full.id) == full
    assert [(a.campaign_id, a.amount) for a in at_200.applied] == [(full.id, 5000)]
    assert [(r.campaign_id, r.reason_code, r.shortfall) for r in at_199_99.refused] == \
        [(full.id, "threshold_not_met", 1)]
    assert (later.discount_amount, [r.reason_code for r in later.refused]) == (15000, ["not_stackable"])
