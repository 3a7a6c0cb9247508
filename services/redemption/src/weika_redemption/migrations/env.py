"""Alembic environment of the redemption service (the kit does the work)."""

from weika_redemption.adapters.tables import metadata

from weika_kit.migrations import run_env

run_env(metadata)
