"""Alembic environment of the catalog service (the kit does the work)."""

from weika_catalog.adapters.tables import metadata
from weika_kit.migrations import run_env

run_env(metadata)
