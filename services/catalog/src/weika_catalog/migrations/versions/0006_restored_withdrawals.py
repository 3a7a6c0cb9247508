"""A refund refused after its withdrawal gives the units back (RestoreDeliveries): the withdrawal row is kept and
marked restored, so the restore happens once and the refund id cannot withdraw again.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from weika_kit.db import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery_withdrawals") as batch:
        batch.add_column(sa.Column("restored_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("delivery_withdrawals") as batch:
        batch.drop_column("restored_at")
