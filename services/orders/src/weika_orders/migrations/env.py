"""Alembic environment of the orders service (the kit does the work)."""

from weika_orders.adapters.tables import metadata

from weika_kit.migrations import run_env

run_env(metadata)
