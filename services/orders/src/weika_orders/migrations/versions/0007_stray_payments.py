"""Stray payments: money a provider notified for an order that could no longer be paid, to be returned.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from weika_kit.db import BigId, UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stray_payments",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("merchant_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("transaction_id", sa.String(64), nullable=False),
        sa.Column("amount", BigId, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("refund_no", sa.String(64), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.String(200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("channel", "transaction_id", name="uq_stray_payments_transaction"),
    )
    op.create_index("ix_stray_payments_order", "stray_payments", ["merchant_id", "mode", "order_id"])
    op.create_index("ix_stray_payments_status", "stray_payments", ["status", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_stray_payments_status", "stray_payments")
    op.drop_index("ix_stray_payments_order", "stray_payments")
    op.drop_table("stray_payments")
