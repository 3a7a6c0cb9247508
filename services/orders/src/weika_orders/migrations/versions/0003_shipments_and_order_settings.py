"""Shipments of physical goods, per-merchant order settings (timers, refund rules), a customer index.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from weika_kit.db import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shipments",
        sa.Column("order_id", sa.String(40), sa.ForeignKey("orders.id"), primary_key=True),
        sa.Column("merchant_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("carrier", sa.String(64), nullable=False),
        sa.Column("tracking_number", sa.String(64), nullable=False),
        sa.Column("shipped_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "order_settings",
        sa.Column("merchant_id", sa.String(40), primary_key=True),
        sa.Column("mode", sa.String(8), primary_key=True),
        sa.Column("auto_cancel_minutes", sa.Integer, nullable=False),
        sa.Column("auto_confirm_days", sa.Integer, nullable=False),
        sa.Column("refund_window_days", sa.Integer, nullable=False),
        sa.Column("refund_expired_coupons", sa.Integer, nullable=False),
        sa.Column("allow_partial_refunds", sa.Integer, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_orders_customer", "orders", ["merchant_id", "mode", "customer_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_orders_customer", "orders")
    op.drop_table("order_settings")
    op.drop_table("shipments")
