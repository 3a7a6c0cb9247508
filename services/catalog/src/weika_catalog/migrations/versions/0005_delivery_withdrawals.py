"""Refunds withdraw undelivered virtual units before the money goes back: a withdrawn count per delivery, and
one row per (refund, product) so a repeated withdrawal withdraws nothing more.

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
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("withdrawn", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "delivery_withdrawals",
        sa.Column("refund_id", sa.String(40), primary_key=True),
        sa.Column("product_id", sa.String(40), primary_key=True),
        sa.Column("order_id", sa.String(40), nullable=False),
        sa.Column("merchant_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("delivery_withdrawals")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("withdrawn")
