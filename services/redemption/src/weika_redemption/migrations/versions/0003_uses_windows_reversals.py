"""Multi-use coupons, usage windows, reversals (audited) and the merchant's reversal window setting.

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
    op.add_column("coupons", sa.Column("usage_windows", sa.JSON, nullable=False, server_default=sa.text("'[]'")))
    op.add_column("coupons", sa.Column("uses_total", sa.Integer, nullable=False, server_default="1"))
    op.add_column("coupons", sa.Column("uses_left", sa.Integer, nullable=False, server_default="1"))
    # Coupons redeemed before this revision have no use left.
    op.execute("UPDATE coupons SET uses_left = 0 WHERE status = 'redeemed'")
    op.add_column("redemptions", sa.Column("device_id", sa.String(100), nullable=False, server_default=""))
    op.add_column("redemptions", sa.Column("reversed_at", UTCDateTime(), nullable=True))
    op.add_column("redemptions", sa.Column("reversed_by", sa.String(60), nullable=True))
    op.add_column("redemptions", sa.Column("reversal_reason", sa.String(200), nullable=True))
    op.create_index("ix_redemptions_tenant_store", "redemptions", ["merchant_id", "mode", "store_id", "redeemed_at"])
    op.create_table(
        "redemption_reversals",
        sa.Column("redemption_id", sa.String(40), sa.ForeignKey("redemptions.id"), primary_key=True),
        sa.Column("coupon_id", sa.String(40), sa.ForeignKey("coupons.id"), nullable=False),
        sa.Column("merchant_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("operator_id", sa.String(60), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("reversed_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "redemption_settings",
        sa.Column("merchant_id", sa.String(40), primary_key=True),
        sa.Column("mode", sa.String(8), primary_key=True),
        sa.Column("reversal_window_minutes", sa.Integer, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(60), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("redemption_settings")
    op.drop_table("redemption_reversals")
    op.drop_index("ix_redemptions_tenant_store", "redemptions")
    for column in ("reversal_reason", "reversed_by", "reversed_at", "device_id"):
        op.drop_column("redemptions", column)
    for column in ("uses_left", "uses_total", "usage_windows"):
        op.drop_column("coupons", column)
