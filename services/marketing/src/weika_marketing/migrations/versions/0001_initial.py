"""Initial marketing schema: campaigns, kit tables.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from weika_kit.db import UTCDateTime
from weika_kit.migrations import create_kit_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_kit_tables(op)
    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("tiers", sa.Text, nullable=False),
        sa.Column("stackable", sa.Boolean, nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_campaigns_live", "campaigns", ["merchant_id", "mode", "active", "ends_at"])
    op.create_index("ix_campaigns_tenant", "campaigns", ["merchant_id", "mode", "created_at"])


def downgrade() -> None:
    op.drop_table("campaigns")
