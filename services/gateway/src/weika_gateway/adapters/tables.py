"""The gateway's tables (SQLAlchemy Core): merchants, API keys, stores, idempotency records, and the kit's."""

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
)

from weika_kit.db import BigId, UTCDateTime, define_kit_tables

metadata = MetaData()
define_kit_tables(metadata)

merchants = Table(
    "merchants", metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("contact", String(200), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

# A key is shown once at creation; only its sha256 is kept, so a leaked database leaks no usable key.
api_keys = Table(
    "api_keys", metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("key_hash", String(64), nullable=False),
    # The public prefix and last four characters, so people can tell keys apart ("wk_live_...x9Qz").
    Column("key_hint", String(24), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
    # Set for a staff member's key (the key acts with the staff's role and stores); empty for the merchant's own.
    Column("staff_id", String(40), nullable=True),
    UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    Index("ix_api_keys_merchant", "merchant_id", "mode"),
)

stores = Table(
    "stores", metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("name", String(100), nullable=False),
    Column("code", String(40), nullable=False),
    Column("region", String(40), nullable=True),
    Column("address", String(300), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    # Two concurrent creates with one code: the database lets exactly one through.
    UniqueConstraint("merchant_id", "mode", "code", name="uq_stores_code"),
    Index("ix_stores_tenant", "merchant_id", "mode", "created_at"),
)

# Which Idempotency-Key first produced which order: tells a first answer (201) from a replay (200).
idempotency_records = Table(
    "idempotency_records", metadata,
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("request_fingerprint", String(64), nullable=False),
    Column("order_id", String(40), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("merchant_id", "mode", "idempotency_key", name="pk_idempotency_records"),
)

# The merchant's staff, per mode: a role, and for store roles the stores they work at. Each has API keys of its own.
staff = Table(
    "staff", metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("name", String(100), nullable=False),
    Column("role", String(20), nullable=False),
    Column("store_ids", String(2100), nullable=False),  # comma-separated; empty = every store
    Column("active", Boolean(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_staff_tenant", "merchant_id", "mode", "created_at"),
)

# Every change made through the API (any method but GET), whoever made it and how it ended.
audit_log = Table(
    "audit_log", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("actor_id", String(40), nullable=False),  # a staff id, or the merchant key's id
    Column("role", String(20), nullable=False),
    Column("method", String(8), nullable=False),
    Column("path", String(300), nullable=False),
    Column("status", Integer, nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Index("ix_audit_log_tenant", "merchant_id", "mode", "id"),
)
