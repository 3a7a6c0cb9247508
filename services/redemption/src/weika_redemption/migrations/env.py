"""Alembic environment of the redemption service (the kit does the work)."""

from weika_kit.migrations import run_env
from weika_redemption.adapters.tables import metadata

run_env(metadata)
