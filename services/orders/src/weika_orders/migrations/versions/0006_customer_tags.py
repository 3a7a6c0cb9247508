"""Customer tags (PRODUCT.md §7): a merchant's labels on a customer, filterable.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer_tags",
        sa.Column("customer_id", sa.String(40), sa.ForeignKey("customers.id"), primary_key=True),
        sa.Column("tag", sa.String(32), primary_key=True),
        sa.Column("merchant_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
    )
    op.create_index("ix_customer_tags_tag", "customer_tags", ["merchant_id", "mode", "tag"])


def downgrade() -> None:
    op.drop_index("ix_customer_tags_tag", "customer_tags")
    op.drop_table("customer_tags")
