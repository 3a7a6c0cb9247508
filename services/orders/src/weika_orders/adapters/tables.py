"""The orders service's tables (SQLAlchemy Core), with the kit's outbox, inbox and lease tables beside them."""

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from weika_kit.db import BigId, UTCDateTime, define_kit_tables

metadata = MetaData()
define_kit_tables(metadata)

customers = Table(
    "customers", metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("external_id", String(64), nullable=False),
    Column("phone_encrypted", Text, nullable=True),  # weika_kit.crypto token; never stored in clear
    Column("birth_year", Integer, nullable=True),
    Column("region", String(16), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("merchant_id", "mode", "external_id", name="uq_customers_external_id"),
)

orders = Table(
    "orders", metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("status", String(24), nullable=False),
    Column("idempotency_key", String(128), nullable=False),
    Column("request_fingerprint", String(128), nullable=False),
    Column("customer_id", String(40), ForeignKey("customers.id"), nullable=False),
    Column("store_id", String(40), nullable=False),
    Column("total_amount", BigId, nullable=False),
    Column("discount_amount", BigId, nullable=False),
    Column("payable_amount", BigId, nullable=False),
    Column("paid_amount", BigId, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("discounts", Text, nullable=False),  # JSON: the quote's applied discounts
    # Set once the catalog confirmed the release of a failed or cancelled order's stock.
    Column("stock_released_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("paid_at", UTCDateTime(), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
    # The key is what makes CreateOrder idempotent: a second insert with it fails, whatever the timing.
    UniqueConstraint("merchant_id", "mode", "idempotency_key", name="uq_orders_idempotency_key"),
    CheckConstraint("discount_amount >= 0 AND discount_amount <= total_amount "
                    "AND payable_amount = total_amount - discount_amount AND paid_amount >= 0",
                    name="ck_orders_amounts"),
    Index("ix_orders_tenant", "merchant_id", "mode", "created_at"),
    Index("ix_orders_status", "status", "created_at"),
    Index("ix_orders_customer", "merchant_id", "mode", "customer_id", "created_at"),
)

order_lines = Table(
    "order_lines", metadata,
    Column("order_id", String(40), ForeignKey("orders.id"), primary_key=True),
    Column("product_id", String(40), primary_key=True),
    Column("product_name", String(200), nullable=False),
    Column("product_kind", String(16), nullable=False),
    Column("category_id", String(40), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", BigId, nullable=False),
    Column("line_amount", BigId, nullable=False),
    Column("coupon_terms", Text, nullable=True),  # JSON snapshot of the coupon rule as sold
    CheckConstraint("quantity > 0 AND unit_price >= 0 AND line_amount = unit_price * quantity",
                    name="ck_order_lines_amounts"),
)

payments = Table(
    "payments", metadata,
    Column("id", String(40), primary_key=True),
    Column("order_id", String(40), ForeignKey("orders.id"), nullable=False),
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("amount", BigId, nullable=False),
    Column("status", String(16), nullable=False),  # succeeded (the only outcome a simulated payment has)
    Column("created_at", UTCDateTime(), nullable=False),
    Column("provider_transaction_id", String(64), nullable=True),  # WeChat transaction_id / Alipay trade_no
    # Defence in depth behind the conditional status update: an order is paid at most once.
    Index("uq_payments_succeeded_per_order", "order_id", unique=True,
          sqlite_where=text("status = 'succeeded'"), postgresql_where=text("status = 'succeeded'")),
)

order_history = Table(
    "order_history", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("order_id", String(40), ForeignKey("orders.id"), nullable=False),
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("from_status", String(24), nullable=False),
    Column("to_status", String(24), nullable=False),
    Column("actor", String(60), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Index("ix_order_history_order", "order_id", "id"),
)

# A merchant's payment channel per mode: ids in clear (for routing), the whole configuration encrypted.
payment_channels = Table(
    "payment_channels", metadata,
    Column("id", String(40), primary_key=True),  # the `account` of our notify URL
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("account_ref", String(64), nullable=False),  # mchid / app_id
    Column("config_encrypted", Text, nullable=False),  # weika_kit.crypto token of the JSON configuration
    Column("masked_settings", Text, nullable=False),  # JSON shown back: ids, fingerprints, ****1234
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("merchant_id", "mode", "channel", name="uq_payment_channels_channel"),
)

# What the provider was asked to collect for an order (code_url / qr_code), so asking again answers the same.
payment_intents = Table(
    "payment_intents", metadata,
    Column("order_id", String(40), primary_key=True),
    Column("channel", String(16), primary_key=True),
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("amount", BigId, nullable=False),
    Column("code_url", Text, nullable=False),
    Column("prepay_id", String(64), nullable=False),
    Column("qr_code", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

# Every provider notification received, with the verdict: paid, duplicate, ignored, rejected (and why).
payment_notifications = Table(
    "payment_notifications", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("merchant_id", String(40), nullable=False),  # "" when the account was unknown
    Column("mode", String(8), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("account_id", String(40), nullable=False),
    Column("out_trade_no", String(64), nullable=False),
    Column("notification_id", String(64), nullable=False),
    Column("provider_transaction_id", String(64), nullable=False),
    Column("amount", BigId, nullable=True),
    Column("verdict", String(16), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Index("ix_payment_notifications_trade", "merchant_id", "mode", "out_trade_no", "id"),
)

shipments = Table(
    "shipments", metadata,
    Column("order_id", String(40), ForeignKey("orders.id"), primary_key=True),
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("carrier", String(64), nullable=False),
    Column("tracking_number", String(64), nullable=False),
    Column("shipped_at", UTCDateTime(), nullable=False),
)

order_settings = Table(
    "order_settings", metadata,
    Column("merchant_id", String(40), primary_key=True),
    Column("mode", String(8), primary_key=True),
    Column("auto_cancel_minutes", Integer, nullable=False),
    Column("auto_confirm_days", Integer, nullable=False),
    Column("refund_window_days", Integer, nullable=False),
    Column("refund_expired_coupons", Integer, nullable=False),  # 0/1: portable across SQLite and PostgreSQL
    Column("allow_partial_refunds", Integer, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

refunds = Table(
    "refunds", metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("order_id", String(40), ForeignKey("orders.id"), nullable=False),
    Column("status", String(16), nullable=False),  # requested | succeeded | refused
    Column("previous_status", String(24), nullable=False),  # where the order goes back after a partial refund
    Column("amount", BigId, nullable=False),
    Column("reason", String(64), nullable=False),
    Column("voided_coupon_ids", Text, nullable=False),  # JSON list
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # Where the provider says the money is: processing | succeeded | abnormal | closed (NULL: no provider answer
    # yet, or the simulated channel); queried by the sweeper while processing, with backoff.
    Column("provider_status", String(16), nullable=True),
    Column("provider_queries", Integer, nullable=False, server_default="0"),
    Column("provider_checked_at", UTCDateTime(), nullable=True),
    Index("ix_refunds_provider_status", "provider_status", "provider_checked_at"),
    # At most one refund in flight per order (the order's refund_requested status guards it too).
    Index("uq_refunds_requested_per_order", "order_id", unique=True,
          sqlite_where=text("status = 'requested'"), postgresql_where=text("status = 'requested'")),
)

refund_lines = Table(
    "refund_lines", metadata,
    Column("refund_id", String(40), ForeignKey("refunds.id"), primary_key=True),
    Column("product_id", String(40), primary_key=True),
    Column("quantity", Integer, nullable=False),
    Column("line_amount", BigId, nullable=False),
)

# What was delivered of an order, one row per delivered thing, so a redelivered event records nothing new:
# `coupon:<coupon_id>` per issued coupon (redemption's coupon-issued), `goods:<product_id>` per virtual line
# the catalog announced delivered (stock-changed "consumed" with the order id).
order_deliveries = Table(
    "order_deliveries", metadata,
    Column("order_id", String(40), primary_key=True),
    Column("delivery_key", String(80), primary_key=True),
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("product_id", String(40), nullable=False),
    Column("delivered_at", UTCDateTime(), nullable=False),
)

# A merchant's labels on a customer (PRODUCT.md §7), filterable: GET /v1/customers?tag=vip.
customer_tags = Table(
    "customer_tags", metadata,
    Column("customer_id", String(40), ForeignKey("customers.id"), primary_key=True),
    Column("tag", String(32), primary_key=True),
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("position", Integer, nullable=False),  # the order the merchant gave them in
    Index("ix_customer_tags_tag", "merchant_id", "mode", "tag"),
)

# Money a provider notified for an order that could no longer be paid (cancelled, or paid through another
# channel), returned through the same channel. One row per provider transaction: a redelivered notification
# records nothing new, so the money goes back once.
stray_payments = Table(
    "stray_payments", metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(40), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("order_id", String(64), nullable=False),  # the notification's out_trade_no
    Column("channel", String(16), nullable=False),
    Column("transaction_id", String(64), nullable=False),  # WeChat transaction_id / Alipay trade_no
    Column("amount", BigId, nullable=False),
    Column("status", String(16), nullable=False),  # pending | refunded | failed
    Column("refund_no", String(64), nullable=False),  # out_refund_no / out_request_no: a retry is a no-op there
    Column("attempts", Integer, nullable=False),
    Column("last_error", String(200), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("provider_status", String(16), nullable=True),  # as on refunds
    Column("provider_queries", Integer, nullable=False, server_default="0"),
    Column("provider_checked_at", UTCDateTime(), nullable=True),
    UniqueConstraint("channel", "transaction_id", name="uq_stray_payments_transaction"),
    Index("ix_stray_payments_provider_status", "provider_status", "provider_checked_at"),
    Index("ix_stray_payments_order", "merchant_id", "mode", "order_id"),
    Index("ix_stray_payments_status", "status", "updated_at"),
)
