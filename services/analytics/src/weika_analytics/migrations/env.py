"""Alembic environment of the analytics service (the kit does the work)."""

from weika_analytics.adapters.tables import metadata
from weika_kit.migrations import run_env

run_env(metadata)
