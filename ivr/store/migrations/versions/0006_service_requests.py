"""service requests and their status history

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 10:32:40

A citizen's report from any channel (voice, SMS, Open311) with its case number, and every change
of its status with who made it and the note (ivr.store.service_requests).
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('service_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_number', sa.String(length=16), nullable=False),
    sa.Column('source_key', sa.String(length=255), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('service_code', sa.String(length=64), nullable=False),
    sa.Column('service_name', sa.String(length=255), nullable=False),
    sa.Column('intent', sa.String(length=64), nullable=False),
    sa.Column('department', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('address', sa.Text(), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('long', sa.Float(), nullable=True),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('contact_phone', sa.String(length=64), nullable=True),
    sa.Column('contact_email', sa.String(length=255), nullable=True),
    sa.Column('text_consent', sa.Boolean(), nullable=False),
    sa.Column('call_sid', sa.String(length=64), nullable=True),
    sa.Column('media_url', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_notes', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('case_number'),
    sa.UniqueConstraint('source_key')
    )
    op.create_index('ix_service_requests_created_at', 'service_requests', ['created_at'], unique=False)
    op.create_index('ix_service_requests_service_created', 'service_requests', ['service_code', 'created_at'],
                    unique=False)
    op.create_index('ix_service_requests_status_created', 'service_requests', ['status', 'created_at'], unique=False)
    op.create_table('service_request_updates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('author', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['service_requests.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_service_request_updates_request_id', 'service_request_updates', ['request_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_service_request_updates_request_id', table_name='service_request_updates')
    op.drop_table('service_request_updates')
    op.drop_index('ix_service_requests_status_created', table_name='service_requests')
    op.drop_index('ix_service_requests_service_created', table_name='service_requests')
    op.drop_index('ix_service_requests_created_at', table_name='service_requests')
    op.drop_table('service_requests')
