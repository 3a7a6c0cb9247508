"""Alembic environment of the marketing service (the kit does the work)."""

from weika_marketing.adapters.tables import metadata

from weika_kit.migrations import run_env

run_env(metadata)
