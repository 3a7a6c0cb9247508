"""The catalog's tables (SQLAlchemy Core), with the kit's outbox, inbox and lease tables beside them."""

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from weika_kit.db import BigId, UTCDateTime, define_kit_tables

metadata = MetaData()
define_kit_tables(metadata)

categories = Table(
    "categories", metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("name", String(100), nullable=False),
    Column("parent_id", String(40), ForeignKey("categories.id"), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("position", Integer, nullable=False, default=0),
    Index("ix_categories_tenant", "merchant_id", "mode"),
)

products = Table(
    "products", metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("category_id", String(40), ForeignKey("categories.id"), nullable=False),
    Column("price", BigId, nullable=False),
    Column("on_shelf", Boolean, nullable=False, default=True),
    Column("stock_mode", String(16), nullable=False),
    # NULL when unlimited; a CHECK keeps a limited count from ever going negative, whatever the code does.
    Column("stock_available", BigId, nullable=True),
    Column("stock_reserved", BigId, nullable=False, default=0),
    Column("coupon_rule", Text, nullable=True),  # JSON
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("details", Text, nullable=True),  # JSON: the kind's own fields (virtual: delivery, ...; physical: weight)
    Column("purchase_limit", Integer, nullable=False, default=0),  # per customer over all orders; 0 = none
    Index("ix_products_tenant", "merchant_id", "mode", "created_at"),
    Index("ix_products_category", "category_id"),
    CheckConstraint("stock_available IS NULL OR stock_available >= 0", name="ck_products_stock_not_negative"),
)

stock_reservations = Table(
    "stock_reservations", metadata,
    Column("order_id", String(40), primary_key=True),
    Column("product_id", String(40), ForeignKey("products.id"), primary_key=True),
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # reserved | released | consumed
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("customer_id", String(40), nullable=True),  # whose purchase count to give back on release
)

stock_moves = Table(
    "stock_moves", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("product_id", String(40), ForeignKey("products.id"), nullable=False),
    Column("merchant_id", String(40), nullable=False),
    Column("order_id", String(40), nullable=True),
    Column("delta", BigId, nullable=False),
    Column("reason", String(16), nullable=False),
    Column("actor", String(60), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("note", String(200), nullable=False, default=""),
    Index("ix_stock_moves_product", "product_id", "id"),
    Index("ix_stock_moves_tenant", "merchant_id", "mode", "product_id", "id"),
)

# Units each customer bought of a limited-per-customer product; a conditional increment enforces the limit.
purchase_counts = Table(
    "purchase_counts", metadata,
    Column("merchant_id", String(40), primary_key=True),
    Column("mode", String(8), primary_key=True),
    Column("product_id", String(40), ForeignKey("products.id"), primary_key=True),
    Column("customer_id", String(40), primary_key=True),
    Column("quantity", Integer, nullable=False),
)

# 卡密: encrypted at rest, found again by keyed fingerprint; one key per (order, product, unit), ever.
card_keys = Table(
    "card_keys", metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("product_id", String(40), ForeignKey("products.id"), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("secret", Text, nullable=False),
    Column("card_number_masked", String(80), nullable=False),
    Column("order_id", String(40), nullable=True),
    Column("unit_index", Integer, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("allocated_at", UTCDateTime(), nullable=True),
    UniqueConstraint("product_id", "fingerprint", name="uq_card_keys_product_fingerprint"),
    UniqueConstraint("order_id", "product_id", "unit_index", name="uq_card_keys_order_unit"),
    Index("ix_card_keys_free", "product_id", "order_id", "created_at"),
)

# What a paid order's virtual lines are owed; "pending" while the inventory cannot cover them. A refund withdraws
# undelivered units (`withdrawn`), so at most quantity - withdrawn are ever delivered; a withdrawal that comes
# before order-paid leaves an "awaiting_payment" row (quantity 0) that the delivery then claims.
deliveries = Table(
    "deliveries", metadata,
    Column("order_id", String(40), primary_key=True),
    Column("product_id", String(40), ForeignKey("products.id"), primary_key=True),
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("delivered", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # awaiting_payment | pending | delivered
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("method", String(16), nullable=False, default="card_key"),  # card_key | top_up
    Column("account", String(100), nullable=True),  # top_up: the account topped up
    Column("supplier_reference", String(100), nullable=True),  # top_up: the supplier's transaction id
    Column("withdrawn", Integer, nullable=False, default=0),  # units a refund took back before delivery
    Index("ix_deliveries_pending", "product_id", "status"),
)

# One row per (refund, product) withdrawn from a delivery: the refund's answer when asked again, and what its
# order-refunded event restocks. `restored_at`: a refused refund gave the units back (RestoreDeliveries) — kept,
# not deleted, so the restore happens once and the refund id never withdraws again.
delivery_withdrawals = Table(
    "delivery_withdrawals", metadata,
    Column("refund_id", String(40), primary_key=True),
    Column("product_id", String(40), primary_key=True),
    Column("order_id", String(40), nullable=False),
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("restored_at", UTCDateTime(), nullable=True),
)

# One row per (refund, product) given back, so a refund restocks once whatever delivers its event.
refund_restocks = Table(
    "refund_restocks", metadata,
    Column("refund_id", String(40), primary_key=True),
    Column("product_id", String(40), primary_key=True),
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

import_jobs = Table(
    "import_jobs", metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("status", String(16), nullable=False),  # imported | rejected
    Column("rows", Integer, nullable=False),
    Column("errors", Text, nullable=True),  # JSON list of {row, column, message}
    Column("created_at", UTCDateTime(), nullable=False),
)

# Product images live in the database every replica shares (no file system state); one copy of given bytes
# per product (sha256), and a product's row is locked while its images change, so the 10-image limit holds.
product_images = Table(
    "product_images", metadata,
    Column("id", String(40), primary_key=True),
    Column("product_id", String(40), ForeignKey("products.id"), nullable=False),
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("content_type", String(32), nullable=False),
    Column("bytes", LargeBinary, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("width", Integer, nullable=False, default=0),
    Column("height", Integer, nullable=False, default=0),
    Column("position", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("product_id", "sha256", name="uq_product_images_sha256"),
    Index("ix_product_images_tenant", "merchant_id", "mode", "product_id", "position"),
)
