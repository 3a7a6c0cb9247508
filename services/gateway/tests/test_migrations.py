"""The migrations build exactly the schema tables.py declares, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from weika_gateway.__main__ import MIGRATIONS
from weika_gateway.adapters.tables import metadata
from weika_kit import migrations


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_migrations_match_the_declared_tables(backend, request, tmp_path):
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'schema.sqlite3'}"
    else:
        url = request.getfixturevalue("fresh_postgres_database")("gateway_schema")
    migrations.upgrade(url, MIGRATIONS)
    migrations.upgrade(url, MIGRATIONS)  # a second start changes nothing

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    finally:
        engine.dispose()
    assert differences == []
