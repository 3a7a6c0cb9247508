"""Full catalog: category positions, kind-specific product fields and purchase limits, per-customer purchase
counters, card-key inventory and deliveries, refund restocks, import jobs.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from weika_kit.db import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("categories") as batch:
        batch.add_column(sa.Column("position", sa.Integer, nullable=False, server_default="0"))
    with op.batch_alter_table("products") as batch:
        batch.add_column(sa.Column("details", sa.Text, nullable=True))
        batch.add_column(sa.Column("purchase_limit", sa.Integer, nullable=False, server_default="0"))
    op.create_index("ix_products_category", "products", ["category_id"])
    with op.batch_alter_table("stock_reservations") as batch:
        batch.add_column(sa.Column("customer_id", sa.String(40), nullable=True))
    with op.batch_alter_table("stock_moves") as batch:
        batch.add_column(sa.Column("mode", sa.String(8), nullable=False, server_default="live"))
        batch.add_column(sa.Column("note", sa.String(200), nullable=False, server_default=""))
    # Moves so far were written without their mode: take it from their product.
    op.execute("UPDATE stock_moves SET mode = (SELECT mode FROM products WHERE products.id = stock_moves.product_id)")
    op.create_index("ix_stock_moves_tenant", "stock_moves", ["merchant_id", "mode", "product_id", "id"])
    op.create_table(
        "purchase_counts",
        sa.Column("merchant_id", sa.String(40), primary_key=True),
        sa.Column("mode", sa.String(8), primary_key=True),
        sa.Column("product_id", sa.String(40), sa.ForeignKey("products.id"), primary_key=True),
        sa.Column("customer_id", sa.String(40), primary_key=True),
        sa.Column("quantity", sa.Integer, nullable=False),
    )
    op.create_table(
        "card_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("merchant_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("product_id", sa.String(40), sa.ForeignKey("products.id"), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("card_number_masked", sa.String(80), nullable=False),
        sa.Column("order_id", sa.String(40), nullable=True),
        sa.Column("unit_index", sa.Integer, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("allocated_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("product_id", "fingerprint", name="uq_card_keys_product_fingerprint"),
        sa.UniqueConstraint("order_id", "product_id", "unit_index", name="uq_card_keys_order_unit"),
    )
    op.create_index("ix_card_keys_free", "card_keys", ["product_id", "order_id", "created_at"])
    op.create_table(
        "deliveries",
        sa.Column("order_id", sa.String(40), primary_key=True),
        sa.Column("product_id", sa.String(40), sa.ForeignKey("products.id"), primary_key=True),
        sa.Column("merchant_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("delivered", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_deliveries_pending", "deliveries", ["product_id", "status"])
    op.create_table(
        "refund_restocks",
        sa.Column("refund_id", sa.String(40), primary_key=True),
        sa.Column("product_id", sa.String(40), primary_key=True),
        sa.Column("merchant_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "import_jobs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("merchant_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("errors", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in ("import_jobs", "refund_restocks", "deliveries", "card_keys", "purchase_counts"):
        op.drop_table(table)
    op.drop_index("ix_products_category", "products")
    op.drop_index("ix_stock_moves_tenant", "stock_moves")
    with op.batch_alter_table("stock_moves") as batch:
        batch.drop_column("note")
        batch.drop_column("mode")
    with op.batch_alter_table("stock_reservations") as batch:
        batch.drop_column("customer_id")
    with op.batch_alter_table("products") as batch:
        batch.drop_column("purchase_limit")
        batch.drop_column("details")
    with op.batch_alter_table("categories") as batch:
        batch.drop_column("position")
