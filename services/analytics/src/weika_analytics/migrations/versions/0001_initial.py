"""Initial analytics schema: fact tables keyed by tenant and natural key, kit tables.

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


def _tenant():
    return [sa.Column("merchant_id", sa.String(64), primary_key=True),
            sa.Column("mode", sa.String(8), primary_key=True)]


def _provenance():
    return [sa.Column("event_id", sa.String(64), nullable=False),
            sa.Column("recorded_at", UTCDateTime(), nullable=False)]


def upgrade() -> None:
    create_kit_tables(op)
    op.create_table(
        "paid_orders",
        *_tenant(),
        sa.Column("order_id", sa.String(64), primary_key=True),
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("customer_external_id", sa.String(100), nullable=False),
        sa.Column("customer_birth_year", sa.Integer, nullable=False),
        sa.Column("customer_region", sa.String(32), nullable=False),
        sa.Column("total_amount", BigId, nullable=False),
        sa.Column("discount_amount", BigId, nullable=False),
        sa.Column("paid_amount", BigId, nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("paid_at", UTCDateTime(), nullable=False),
        *_provenance(),
    )
    op.create_index("ix_paid_orders_time", "paid_orders", ["merchant_id", "mode", "paid_at"])
    op.create_table(
        "paid_order_lines",
        *_tenant(),
        sa.Column("order_id", sa.String(64), primary_key=True),
        sa.Column("line_no", sa.Integer, primary_key=True),
        sa.Column("product_id", sa.String(64), nullable=False),
        sa.Column("product_kind", sa.String(32), nullable=False),
        sa.Column("category_id", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("unit_price", BigId, nullable=False),
        sa.Column("line_amount", BigId, nullable=False),
    )
    op.create_index("ix_paid_order_lines_product", "paid_order_lines", ["merchant_id", "mode", "product_id"])
    op.create_table(
        "issued_coupons",
        *_tenant(),
        sa.Column("coupon_id", sa.String(64), primary_key=True),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("product_id", sa.String(64), nullable=False),
        sa.Column("category_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("face_value", BigId, nullable=False),
        sa.Column("threshold", BigId, nullable=False),
        sa.Column("valid_from", UTCDateTime(), nullable=True),
        sa.Column("valid_until", UTCDateTime(), nullable=True),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        *_provenance(),
    )
    op.create_index("ix_issued_coupons_time", "issued_coupons", ["merchant_id", "mode", "issued_at"])
    op.create_table(
        "redemptions",
        *_tenant(),
        sa.Column("redemption_id", sa.String(64), primary_key=True),
        sa.Column("coupon_id", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("product_id", sa.String(64), nullable=False),
        sa.Column("category_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("operator_id", sa.String(64), nullable=False),
        sa.Column("order_amount", BigId, nullable=False),
        sa.Column("face_value", BigId, nullable=False),
        sa.Column("redeemed_at", UTCDateTime(), nullable=False),
        *_provenance(),
    )
    op.create_index("ix_redemptions_time", "redemptions", ["merchant_id", "mode", "redeemed_at"])
    op.create_table(
        "refunds",
        *_tenant(),
        sa.Column("refund_id", sa.String(64), primary_key=True),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("refund_amount", BigId, nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("refunded_at", UTCDateTime(), nullable=False),
        *_provenance(),
    )
    op.create_index("ix_refunds_time", "refunds", ["merchant_id", "mode", "refunded_at"])
    op.create_table(
        "redemption_reversals",
        *_tenant(),
        sa.Column("redemption_id", sa.String(64), primary_key=True),
        sa.Column("coupon_id", sa.String(64), nullable=False),
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("operator_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("reversed_at", UTCDateTime(), nullable=False),
        *_provenance(),
    )
    op.create_index("ix_redemption_reversals_time", "redemption_reversals", ["merchant_id", "mode", "reversed_at"])
    op.create_table(
        "voided_coupons",
        *_tenant(),
        sa.Column("coupon_id", sa.String(64), primary_key=True),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("voided_at", UTCDateTime(), nullable=False),
        *_provenance(),
    )
    op.create_index("ix_voided_coupons_time", "voided_coupons", ["merchant_id", "mode", "voided_at"])


def downgrade() -> None:
    for table in ("voided_coupons", "redemption_reversals", "refunds", "redemptions", "issued_coupons",
                  "paid_order_lines", "paid_orders"):
        op.drop_table(table)
