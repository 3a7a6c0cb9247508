"""Shared helpers for the marketing tests: migrated databases on a movable clock, a campaign and quote helper."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from weika_kit import migrations
from weika_kit.context import Caller
from weika_kit.db import Database
from weika_marketing.bootstrap import MIGRATIONS
from weika_marketing.domain.model import Campaign, Quote, QuoteLine, Tier
from weika_marketing.service_layer import services


class Clock:
    """The time every database of a test reads; tests move it."""

    def __init__(self) -> None:
        self.now = datetime(2025, 6, 18, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class Marketing:
    """Use cases of one marketing database, with defaults that keep tests short."""

    def __init__(self, db: Database, clock: Clock):
        self.db = db
        self.clock = clock

    def campaign(self, caller: Caller, *tiers: tuple[int, int], name: str = "618 满减", stackable: bool = False,
                 starts_at: datetime | None = None, ends_at: datetime | None = None,
                 kind: str = "full_reduction") -> Campaign:
        starts_at = starts_at or self.clock.now - timedelta(days=1)
        return services.create_campaign(self.db, caller, services.NewCampaign(
            kind=kind, name=name, tiers=tuple(Tier(threshold, reduction) for threshold, reduction in tiers),
            stackable=stackable, starts_at=starts_at, ends_at=ends_at or starts_at + timedelta(days=30)))

    def quote(self, caller: Caller, *amounts: int) -> Quote:
        """A basket of one unit per amount (fen)."""
        lines = [QuoteLine(f"prd_{i}", "cat_1", 1, amount) for i, amount in enumerate(amounts)]
        return services.quote_price(self.db, caller, lines)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """A SQLite file migrated once per session; each test copies it instead of running the migrations again."""
    path = tmp_path_factory.mktemp("marketing-template") / "marketing.sqlite3"
    migrations.upgrade(f"sqlite:///{path}", MIGRATIONS)
    return path


@pytest.fixture
def make_marketing(tmp_path, migrated_sqlite, clock) -> Iterator[Callable[..., Marketing]]:
    """Factory: a Marketing helper on a freshly migrated database (SQLite in tmp_path unless a URL is given)."""
    made: list[Database] = []

    def make(url: str | None = None) -> Marketing:
        if url is None:
            path = tmp_path / f"marketing-{len(made)}.sqlite3"
            shutil.copy(migrated_sqlite, path)
            url = f"sqlite:///{path}"
        else:
            migrations.upgrade(url, MIGRATIONS)
        db = Database(url, service="marketing", clock=clock)
        made.append(db)
        return Marketing(db, clock)

    yield make
    for db in made:
        db.dispose()


@pytest.fixture
def marketing(make_marketing) -> Marketing:
    return make_marketing()
