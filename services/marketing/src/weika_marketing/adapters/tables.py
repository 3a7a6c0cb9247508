"""The marketing service's tables (SQLAlchemy Core), with the kit's outbox, inbox and lease tables beside them."""

from sqlalchemy import Boolean, Column, Index, MetaData, String, Table, Text

from weika_kit.db import UTCDateTime, define_kit_tables

metadata = MetaData()
define_kit_tables(metadata)

campaigns = Table(
    "campaigns", metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(64), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("name", String(100), nullable=False),
    # JSON: [{"threshold": 20000, "reduction": 5000}, ...], thresholds ascending
    Column("tiers", Text, nullable=False),
    Column("stackable", Boolean, nullable=False),
    Column("starts_at", UTCDateTime(), nullable=False),
    Column("ends_at", UTCDateTime(), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_campaigns_live", "merchant_id", "mode", "active", "ends_at"),
    Index("ix_campaigns_tenant", "merchant_id", "mode", "created_at"),
)
