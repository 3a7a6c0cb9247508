"""Initial orders schema: customers, orders, order lines, payments, order history, kit tables.

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
        "customers",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("merchant_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("external_id", sa.String(64), nullable=False),
        sa.Column("phone_encrypted", sa.Text, nullable=True),
        sa.Column("birth_year", sa.Integer, nullable=True),
        sa.Column("region", sa.String(16), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("merchant_id", "mode", "external_id", name="uq_customers_external_id"),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("merchant_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("request_fingerprint", sa.String(128), nullable=False),
        sa.Column("customer_id", sa.String(40), sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("store_id", sa.String(40), nullable=False),
        sa.Column("total_amount", BigId, nullable=False),
        sa.Column("discount_amount", BigId, nullable=False),
        sa.Column("payable_amount", BigId, nullable=False),
        sa.Column("paid_amount", BigId, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("discounts", sa.Text, nullable=False),
        sa.Column("stock_released_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("paid_at", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("merchant_id", "mode", "idempotency_key", name="uq_orders_idempotency_key"),
        sa.CheckConstraint("discount_amount >= 0 AND discount_amount <= total_amount "
                           "AND payable_amount = total_amount - discount_amount AND paid_amount >= 0",
                           name="ck_orders_amounts"),
    )
    op.create_index("ix_orders_tenant", "orders", ["merchant_id", "mode", "created_at"])
    op.create_index("ix_orders_status", "orders", ["status", "created_at"])
    op.create_table(
        "order_lines",
        sa.Column("order_id", sa.String(40), sa.ForeignKey("orders.id"), primary_key=True),
        sa.Column("product_id", sa.String(40), primary_key=True),
        sa.Column("product_name", sa.String(200), nullable=False),
        sa.Column("product_kind", sa.String(16), nullable=False),
        sa.Column("category_id", sa.String(40), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("unit_price", BigId, nullable=False),
        sa.Column("line_amount", BigId, nullable=False),
        sa.Column("coupon_terms", sa.Text, nullable=True),
        sa.CheckConstraint("quantity > 0 AND unit_price >= 0 AND line_amount = unit_price * quantity",
                           name="ck_order_lines_amounts"),
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("order_id", sa.String(40), sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("merchant_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("amount", BigId, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("uq_payments_succeeded_per_order", "payments", ["order_id"], unique=True,
                    sqlite_where=sa.text("status = 'succeeded'"), postgresql_where=sa.text("status = 'succeeded'"))
    op.create_table(
        "order_history",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.String(40), sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("merchant_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("from_status", sa.String(24), nullable=False),
        sa.Column("to_status", sa.String(24), nullable=False),
        sa.Column("actor", sa.String(60), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_order_history_order", "order_history", ["order_id", "id"])


def downgrade() -> None:
    for table in ("order_history", "payments", "order_lines", "orders", "customers"):
        op.drop_table(table)
