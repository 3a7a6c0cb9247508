"""Catalog test fixtures: a migrated database and callers."""

from __future__ import annotations

import pytest

from weika_catalog.bootstrap import MIGRATIONS
from weika_kit import migrations
from weika_kit.db import Database


def migrated(url: str) -> Database:
    migrations.upgrade(url, MIGRATIONS)
    return Database(url, service="catalog", pool_size=20)


@pytest.fixture
def make_db():
    """Factory: a migrated catalog database at a URL (for PostgreSQL tests)."""
    made = []

    def make(url: str) -> Database:
        made.append(migrated(url))
        return made[-1]

    yield make
    for database in made:
        database.dispose()


@pytest.fixture
def db(tmp_path):
    database = migrated(f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
    yield database
    database.dispose()
