"""Top-up deliveries: which account was topped up and the supplier's transaction id.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("method", sa.String(16), nullable=False, server_default="card_key"))
        batch.add_column(sa.Column("account", sa.String(100), nullable=True))
        batch.add_column(sa.Column("supplier_reference", sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("supplier_reference")
        batch.drop_column("account")
        batch.drop_column("method")
