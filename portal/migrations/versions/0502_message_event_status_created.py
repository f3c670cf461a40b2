"""message_event (status, created_at): the /ops throughput chart counts status changes by time

Revision ID: 0502
Revises: 0501
"""
from alembic import op


revision = '0502'
down_revision = '0501'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('message_event') as batch:
        batch.create_index('ix_message_event_status_created', ['status', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('message_event') as batch:
        batch.drop_index('ix_message_event_status_created')
