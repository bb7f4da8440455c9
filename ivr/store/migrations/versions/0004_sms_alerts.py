"""sms: sms_contacts (STOP/START, language, pending draft), subscriptions, alerts

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 10:31:31

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('topic', sa.String(length=64), nullable=False),
    sa.Column('intents', sa.JSON(), nullable=False),
    sa.Column('message', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_by', sa.String(length=128), nullable=True),
    sa.Column('recipients', sa.Integer(), nullable=False),
    sa.Column('heard_voice', sa.Integer(), nullable=False),
    sa.Column('heard_sms', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_alerts_created_at', 'alerts', ['created_at'], unique=False)
    op.create_index('ix_alerts_topic', 'alerts', ['topic'], unique=False)
    op.create_table('sms_contacts',
    sa.Column('phone', sa.String(length=64), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=True),
    sa.Column('opted_out', sa.Boolean(), nullable=False),
    sa.Column('opted_out_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('opted_in_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('pending', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('phone')
    )
    op.create_table('subscriptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('phone', sa.String(length=64), nullable=False),
    sa.Column('topic', sa.String(length=64), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('phone', 'topic', name='uq_subscriptions_phone_topic')
    )
    op.create_index('ix_subscriptions_topic', 'subscriptions', ['topic'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_subscriptions_topic', table_name='subscriptions')
    op.drop_table('subscriptions')
    op.drop_table('sms_contacts')
    op.drop_index('ix_alerts_topic', table_name='alerts')
    op.drop_index('ix_alerts_created_at', table_name='alerts')
    op.drop_table('alerts')
