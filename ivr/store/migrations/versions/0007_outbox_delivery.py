"""outbox: the provider's later delivery status (Twilio StatusCallback), rows found by provider id

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 11:35:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('delivery_status', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('delivery_updated_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_outbox_provider_id', 'outbox', ['provider_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_outbox_provider_id', table_name='outbox')
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('delivery_updated_at')
        batch.drop_column('delivery_status')
