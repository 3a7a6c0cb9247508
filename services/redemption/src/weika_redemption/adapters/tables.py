"""The redemption service's tables (SQLAlchemy Core), with the kit's outbox, inbox and lease tables beside them."""

from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from weika_kit.db import BigId, UTCDateTime, define_kit_tables

metadata = MetaData()
define_kit_tables(metadata)

coupons = Table(
    "coupons", metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("order_id", String(40), nullable=False),
    Column("product_id", String(40), nullable=False),
    # 0..n-1 over the order's units of this product: with the order and product it names one sold unit.
    Column("unit_index", Integer, nullable=False),
    Column("category_id", String(40), nullable=False),
    Column("customer_id", String(40), nullable=False),
    # Keyed hash of the normalized code: how a typed code is found, without storing it in the clear.
    Column("code_fingerprint", String(64), nullable=False, unique=True),
    Column("code_encrypted", Text, nullable=False),
    Column("status", String(16), nullable=False),  # issued | redeemed | voided
    Column("face_value", BigId, nullable=False),
    Column("threshold", BigId, nullable=False),
    Column("store_ids", JSON, nullable=False),
    Column("redeem_methods", JSON, nullable=False),
    Column("valid_from", UTCDateTime(), nullable=False),
    Column("valid_until", UTCDateTime(), nullable=False),
    Column("issued_at", UTCDateTime(), nullable=False),
    Column("redeemed_at", UTCDateTime(), nullable=True),
    Column("redeemed_store_id", String(40), nullable=True),
    Column("redeemed_by", String(60), nullable=True),
    Column("usage_windows", JSON, nullable=False, server_default="[]"),
    Column("uses_total", Integer, nullable=False, server_default="1"),
    # Decremented by a conditional UPDATE (uses_left > 0): N uses are never N+1.
    Column("uses_left", Integer, nullable=False, server_default="1"),
    # A redelivered or republished order-paid, even in two consumer processes at once, cannot issue twice.
    UniqueConstraint("order_id", "product_id", "unit_index", name="uq_coupons_order_unit"),
    Index("ix_coupons_tenant_order", "merchant_id", "mode", "order_id"),
)

redemptions = Table(
    "redemptions", metadata,
    Column("id", String(40), primary_key=True),
    Column("coupon_id", String(40), ForeignKey("coupons.id"), nullable=False),
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("store_id", String(40), nullable=False),
    Column("operator_id", String(60), nullable=False),
    Column("order_amount", BigId, nullable=False),
    Column("face_value", BigId, nullable=False),
    Column("redeemed_at", UTCDateTime(), nullable=False),
    Column("device_id", String(100), nullable=False, server_default=""),
    # Set once, by `UPDATE .. WHERE reversed_at IS NULL`: a redemption is reversed at most once.
    Column("reversed_at", UTCDateTime(), nullable=True),
    Column("reversed_by", String(60), nullable=True),
    Column("reversal_reason", String(200), nullable=True),
    Index("ix_redemptions_coupon", "coupon_id"),
    Index("ix_redemptions_tenant_time", "merchant_id", "mode", "redeemed_at"),
    Index("ix_redemptions_tenant_store", "merchant_id", "mode", "store_id", "redeemed_at"),
)

# The audit of reversals: who undid which redemption, when and why (one per redemption).
redemption_reversals = Table(
    "redemption_reversals", metadata,
    Column("redemption_id", String(40), ForeignKey("redemptions.id"), primary_key=True),
    Column("coupon_id", String(40), ForeignKey("coupons.id"), nullable=False),
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("operator_id", String(60), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("reversed_at", UTCDateTime(), nullable=False),
)

# Per merchant and mode; no row = the defaults.
redemption_settings = Table(
    "redemption_settings", metadata,
    Column("merchant_id", String(40), primary_key=True),
    Column("mode", String(8), primary_key=True),
    Column("reversal_window_minutes", Integer, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("updated_by", String(60), nullable=False),
)

redemption_attempts = Table(
    "redemption_attempts", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("code_fingerprint", String(64), nullable=False),
    Column("coupon_id", String(40), nullable=True),  # NULL when the code matched no coupon of the caller
    Column("store_id", String(40), nullable=False),
    Column("operator_id", String(60), nullable=False),
    Column("device_id", String(100), nullable=False),
    Column("result", String(40), nullable=False),  # "ok" or the refusal code
    Column("at", UTCDateTime(), nullable=False),
    Index("ix_redemption_attempts_tenant_time", "merchant_id", "mode", "at"),
    Index("ix_redemption_attempts_fingerprint", "code_fingerprint", "at"),
)

# Which coupons each refund voided: a retried refund finds its voids here instead of voiding more.
coupon_voids = Table(
    "coupon_voids", metadata,
    Column("refund_id", String(40), primary_key=True),
    Column("coupon_id", String(40), ForeignKey("coupons.id"), primary_key=True),
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("order_id", String(40), nullable=False),
    Column("voided_at", UTCDateTime(), nullable=False),
)
