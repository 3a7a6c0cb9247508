"""Analytics use cases: record a fact from an event (inside the consumer's unit of work), compute reports."""

from __future__ import annotations

from weika_analytics import metrics
from weika_analytics.adapters.repository import AnalyticsRepository
from weika_analytics.domain.model import Fact, Overview, Window
from weika_kit.context import Caller
from weika_kit.db import Database, UnitOfWork


def record_fact(uow: UnitOfWork, caller: Caller, fact: Fact, event_id: str) -> bool:
    """Store a fact unless it is already known by its natural key; True when it was new.

    Runs in the consumer's unit of work, which commits it together with the event's inbox row.
    """
    fact.validate()
    recorded = AnalyticsRepository(uow, caller).add(fact, event_id)
    metrics.FACTS.labels(fact.kind, "recorded" if recorded else "duplicate").inc()
    return recorded


def get_overview(db: Database, caller: Caller, window: Window) -> Overview:
    window.validate()
    with db.unit_of_work() as uow:
        return AnalyticsRepository(uow, caller).overview(window)
