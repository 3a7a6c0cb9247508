"""Schema migrations per service with Alembic, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, create_engine, text

from weika_kit.db import KIT_METADATA, create_database_if_missing, is_sqlite

# Replicas starting together serialise their migrations on this PostgreSQL advisory lock.
_MIGRATION_LOCK = 0x5745494B41  # "WEIKA"


def upgrade(url: str, script_location: str) -> None:
    """Create the database when missing, then bring its schema to the newest revision."""
    create_database_if_missing(url)
    cfg = Config()
    cfg.set_main_option("script_location", script_location)
    cfg.attributes["url"] = url
    command.upgrade(cfg, "head")


def run_env(target_metadata: MetaData | None = None) -> None:
    """The body of every service's migrations/env.py (online mode only)."""
    from alembic import context

    url = context.config.attributes["url"]
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=target_metadata,
                              render_as_batch=is_sqlite(url))
            with context.begin_transaction():
                if not is_sqlite(url):
                    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
                context.run_migrations()
    finally:
        engine.dispose()


def create_kit_tables(op: Any) -> None:
    """Called from a service's first migration: the outbox, inbox and lease tables."""
    KIT_METADATA.create_all(op.get_bind())
