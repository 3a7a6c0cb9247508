"""Alembic environment of the gateway (the kit does the work)."""

from weika_gateway.adapters.tables import metadata
from weika_kit.migrations import run_env

run_env(metadata)
