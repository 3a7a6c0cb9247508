"""Initial redemption schema: coupons, redemptions, redemption attempts, kit tables.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from weika_kit.db import BigId, UTCDateTime
from weika_kit.migrations import create_kit_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_kit_tables(op)
    op.create_table(
        "coupons",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("merchant_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("order_id", sa.String(40), nullable=False),
        sa.Column("product_id", sa.String(40), nullable=False),
        sa.Column("unit_index", sa.Integer, nullable=False),
        sa.Column("category_id", sa.String(40), nullable=False),
        sa.Column("customer_id", sa.String(40), nullable=False),
        sa.Column("code_fingerprint", sa.String(64), nullable=False, unique=True),
        sa.Column("code_encrypted", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("face_value", BigId, nullable=False),
        sa.Column("threshold", BigId, nullable=False),
        sa.Column("store_ids", sa.JSON, nullable=False),
        sa.Column("redeem_methods", sa.JSON, nullable=False),
        sa.Column("valid_from", UTCDateTime(), nullable=False),
        sa.Column("valid_until", UTCDateTime(), nullable=False),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("redeemed_at", UTCDateTime(), nullable=True),
        sa.Column("redeemed_store_id", sa.String(40), nullable=True),
        sa.Column("redeemed_by", sa.String(60), nullable=True),
        sa.UniqueConstraint("order_id", "product_id", "unit_index", name="uq_coupons_order_unit"),
    )
    op.create_index("ix_coupons_tenant_order", "coupons", ["merchant_id", "mode", "order_id"])
    op.create_table(
        "redemptions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("coupon_id", sa.String(40), sa.ForeignKey("coupons.id"), nullable=False),
        sa.Column("merchant_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("store_id", sa.String(40), nullable=False),
        sa.Column("operator_id", sa.String(60), nullable=False),
        sa.Column("order_amount", BigId, nullable=False),
        sa.Column("face_value", BigId, nullable=False),
        sa.Column("redeemed_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_redemptions_coupon", "redemptions", ["coupon_id"])
    op.create_index("ix_redemptions_tenant_time", "redemptions", ["merchant_id", "mode", "redeemed_at"])
    op.create_table(
        "redemption_attempts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("merchant_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("code_fingerprint", sa.String(64), nullable=False),
        sa.Column("coupon_id", sa.String(40), nullable=True),
        sa.Column("store_id", sa.String(40), nullable=False),
        sa.Column("operator_id", sa.String(60), nullable=False),
        sa.Column("device_id", sa.String(100), nullable=False),
        sa.Column("result", sa.String(40), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_redemption_attempts_tenant_time", "redemption_attempts", ["merchant_id", "mode", "at"])
    op.create_index("ix_redemption_attempts_fingerprint", "redemption_attempts", ["code_fingerprint", "at"])


def downgrade() -> None:
    for table in ("redemption_attempts", "redemptions", "coupons"):
        op.drop_table(table)
