"""Alembic environment of the catalog service (the kit does the work)."""

from weika_kit.migrations import run_env

from weika_catalog.adapters.tables import metadata

run_env(metadata)
