"""Alembic environment of the marketing service (the kit does the work)."""

from weika_kit.migrations import run_env
from weika_marketing.adapters.tables import metadata

run_env(metadata)
