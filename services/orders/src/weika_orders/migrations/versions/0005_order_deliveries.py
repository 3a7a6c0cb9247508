"""Order deliveries (issued coupons, delivered virtual goods) that move paid digital orders to delivered.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from weika_kit.db import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "order_deliveries",
        sa.Column("order_id", sa.String(40), primary_key=True),
        sa.Column("delivery_key", sa.String(80), primary_key=True),
        sa.Column("merchant_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("product_id", sa.String(40), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("order_deliveries")
