"""Refunds and their lines (partial refunds by quantity).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from weika_kit.db import BigId, UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "refunds",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("merchant_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("order_id", sa.String(40), sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("previous_status", sa.String(24), nullable=False),
        sa.Column("amount", BigId, nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("voided_coupon_ids", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("uq_refunds_requested_per_order", "refunds", ["order_id"], unique=True,
                    sqlite_where=sa.text("status = 'requested'"), postgresql_where=sa.text("status = 'requested'"))
    op.create_table(
        "refund_lines",
        sa.Column("refund_id", sa.String(40), sa.ForeignKey("refunds.id"), primary_key=True),
        sa.Column("product_id", sa.String(40), primary_key=True),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("line_amount", BigId, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("refund_lines")
    op.drop_table("refunds")
