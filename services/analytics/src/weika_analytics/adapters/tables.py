"""The analytics read models (SQLAlchemy Core): one fact table per kind of fact, keyed by tenant + natural key.

The primary key is what makes a fact count once: a duplicate event, whatever its event id, finds its
fact already there. The kit's outbox, inbox and lease tables sit beside them.
"""

from sqlalchemy import Column, Index, Integer, MetaData, String, Table

from weika_kit.db import BigId, UTCDateTime, define_kit_tables

metadata = MetaData()
define_kit_tables(metadata)


def _tenant_columns() -> list[Column]:
    return [Column("merchant_id", String(64), primary_key=True), Column("mode", String(8), primary_key=True)]


def _provenance_columns() -> list[Column]:
    # Which event first told us, and when: for tracing a number back to its source, never used in reports.
    return [Column("event_id", String(64), nullable=False), Column("recorded_at", UTCDateTime(), nullable=False)]


paid_orders = Table(
    "paid_orders", metadata,
    *_tenant_columns(),
    Column("order_id", String(64), primary_key=True),
    Column("store_id", String(64), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("customer_external_id", String(100), nullable=False),
    Column("customer_birth_year", Integer, nullable=False),
    Column("customer_region", String(32), nullable=False),
    Column("total_amount", BigId, nullable=False),
    Column("discount_amount", BigId, nullable=False),
    Column("paid_amount", BigId, nullable=False),
    Column("channel", String(32), nullable=False),
    Column("paid_at", UTCDateTime(), nullable=False),
    *_provenance_columns(),
    Index("ix_paid_orders_time", "merchant_id", "mode", "paid_at"),
)

paid_order_lines = Table(
    "paid_order_lines", metadata,
    *_tenant_columns(),
    Column("order_id", String(64), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("product_id", String(64), nullable=False),
    Column("product_kind", String(32), nullable=False),
    Column("category_id", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", BigId, nullable=False),
    Column("line_amount", BigId, nullable=False),
    Index("ix_paid_order_lines_product", "merchant_id", "mode", "product_id"),
)

issued_coupons = Table(
    "issued_coupons", metadata,
    *_tenant_columns(),
    Column("coupon_id", String(64), primary_key=True),
    Column("order_id", String(64), nullable=False),
    Column("product_id", String(64), nullable=False),
    Column("category_id", String(64), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("face_value", BigId, nullable=False),
    Column("threshold", BigId, nullable=False),
    Column("valid_from", UTCDateTime(), nullable=True),
    Column("valid_until", UTCDateTime(), nullable=True),
    Column("issued_at", UTCDateTime(), nullable=False),
    *_provenance_columns(),
    Index("ix_issued_coupons_time", "merchant_id", "mode", "issued_at"),
)

redemptions = Table(
    "redemptions", metadata,
    *_tenant_columns(),
    Column("redemption_id", String(64), primary_key=True),
    Column("coupon_id", String(64), nullable=False),
    Column("order_id", String(64), nullable=False),
    Column("product_id", String(64), nullable=False),
    Column("category_id", String(64), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("store_id", String(64), nullable=False),
    Column("operator_id", String(64), nullable=False),
    Column("order_amount", BigId, nullable=False),
    Column("face_value", BigId, nullable=False),
    Column("redeemed_at", UTCDateTime(), nullable=False),
    *_provenance_columns(),
    Index("ix_redemptions_time", "merchant_id", "mode", "redeemed_at"),
)

refunds = Table(
    "refunds", metadata,
    *_tenant_columns(),
    Column("refund_id", String(64), primary_key=True),
    Column("order_id", String(64), nullable=False),
    Column("refund_amount", BigId, nullable=False),
    Column("reason", String(200), nullable=False),
    Column("refunded_at", UTCDateTime(), nullable=False),
    *_provenance_columns(),
    Index("ix_refunds_time", "merchant_id", "mode", "refunded_at"),
)

redemption_reversals = Table(
    "redemption_reversals", metadata,
    *_tenant_columns(),
    Column("redemption_id", String(64), primary_key=True),
    Column("coupon_id", String(64), nullable=False),
    Column("store_id", String(64), nullable=False),
    Column("operator_id", String(64), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("reversed_at", UTCDateTime(), nullable=False),
    *_provenance_columns(),
    Index("ix_redemption_reversals_time", "merchant_id", "mode", "reversed_at"),
)

voided_coupons = Table(
    "voided_coupons", metadata,
    *_tenant_columns(),
    Column("coupon_id", String(64), primary_key=True),
    Column("order_id", String(64), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("voided_at", UTCDateTime(), nullable=False),
    *_provenance_columns(),
    Index("ix_voided_coupons_time", "merchant_id", "mode", "voided_at"),
)
