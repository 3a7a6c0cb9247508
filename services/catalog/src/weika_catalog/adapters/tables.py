"""The catalog's tables (SQLAlchemy Core), with the kit's outbox, inbox and lease tables beside them."""

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
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
    Index("ix_products_tenant", "merchant_id", "mode", "created_at"),
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
    Index("ix_stock_moves_product", "product_id", "id"),
)
