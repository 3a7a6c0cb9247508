"""Alembic environment of the orders service (the kit does the work)."""

from weika_kit.migrations import run_env
from weika_orders.adapters.tables import metadata

run_env(metadata)
