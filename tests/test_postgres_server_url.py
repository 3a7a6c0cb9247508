"""POSTGRES_URL names a server: each service gets its own database on it, created when missing."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import inspect

from weika_kit import config, migrations
from weika_kit.db import Database


@pytest.mark.postgres
def test_service_database_is_created_on_the_postgres_server_when_missing(postgres_server_url, monkeypatch):
    from weika_catalog.bootstrap import MIGRATIONS

    service = f"kit{uuid.uuid4().hex[:8]}"
    monkeypatch.delenv(f"WEIKA_{service.upper()}_DATABASE_URL", raising=False)
    monkeypatch.setenv("POSTGRES_URL", postgres_server_url)
    url = config.database_url(service)
    assert url.startswith("postgresql+psycopg://") and url.endswith(f"/weika_{service}")
    try:
        migrations.upgrade(url, MIGRATIONS)
        migrations.upgrade(url, MIGRATIONS)  # a restart finds it migrated and changes nothing
        db = Database(url, service=service)
        tables = set(inspect(db.engine).get_table_names())
        db.dispose()
        assert {"kit_outbox", "kit_processed_events", "kit_leases", "products", "alembic_version"} <= tables
    finally:
        with psycopg.connect(postgres_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(f"weika_{service}")))
