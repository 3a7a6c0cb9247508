"""Payment channels (encrypted settings), payment intents, payment notifications; provider transaction ids.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from weika_kit.db import BigId, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("payments", sa.Column("provider_transaction_id", sa.String(64), nullable=True))
    op.create_table(
        "payment_channels",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("merchant_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("account_ref", sa.String(64), nullable=False),
        sa.Column("config_encrypted", sa.Text, nullable=False),
        sa.Column("masked_settings", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("merchant_id", "mode", "channel", name="uq_payment_channels_channel"),
    )
    op.create_table(
        "payment_intents",
        sa.Column("order_id", sa.String(40), primary_key=True),
        sa.Column("channel", sa.String(16), primary_key=True),
        sa.Column("merchant_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("amount", BigId, nullable=False),
        sa.Column("code_url", sa.Text, nullable=False),
        sa.Column("prepay_id", sa.String(64), nullable=False),
        sa.Column("qr_code", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "payment_notifications",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("merchant_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("out_trade_no", sa.String(64), nullable=False),
        sa.Column("notification_id", sa.String(64), nullable=False),
        sa.Column("provider_transaction_id", sa.String(64), nullable=False),
        sa.Column("amount", BigId, nullable=True),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_payment_notifications_trade", "payment_notifications",
                    ["merchant_id", "mode", "out_trade_no", "id"])


def downgrade() -> None:
    for table in ("payment_notifications", "payment_intents", "payment_channels"):
        op.drop_table(table)
    op.drop_column("payments", "provider_transaction_id")
