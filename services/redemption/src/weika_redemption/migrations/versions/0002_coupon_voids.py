"""Coupons voided by refunds, per refund, so a retried refund voids nothing more.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from weika_kit.db import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "coupon_voids",
        sa.Column("refund_id", sa.String(40), primary_key=True),
        sa.Column("coupon_id", sa.String(40), sa.ForeignKey("coupons.id"), primary_key=True),
        sa.Column("merchant_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("order_id", sa.String(40), nullable=False),
        sa.Column("voided_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("coupon_voids")
