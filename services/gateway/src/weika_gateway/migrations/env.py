"""Alembic environment of the gateway (the kit does the work)."""

from weika_kit.migrations import run_env

from weika_gateway.adapters.tables import metadata

run_env(metadata)
