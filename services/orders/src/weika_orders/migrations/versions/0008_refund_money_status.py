"""Refund money status: where the provider says the money of a refund (or a stray payment's return) is.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from weika_kit.db import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLES = ("refunds", "stray_payments")


def upgrade() -> None:
    for table in TABLES:
        # processing | succeeded | abnormal | closed; NULL while no provider has answered (or none is involved)
        op.add_column(table, sa.Column("provider_status", sa.String(16), nullable=True))
        op.add_column(table, sa.Column("provider_queries", sa.Integer, nullable=False, server_default="0"))
        op.add_column(table, sa.Column("provider_checked_at", UTCDateTime(), nullable=True))
        op.create_index(f"ix_{table}_provider_status", table, ["provider_status", "provider_checked_at"])


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_provider_status", table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("provider_checked_at")
            batch.drop_column("provider_queries")
            batch.drop_column("provider_status")
