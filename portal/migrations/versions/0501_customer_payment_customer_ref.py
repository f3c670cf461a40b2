"""customer.payment_customer_ref: the payment gateway's customer id (e.g. Stripe cus_...)

Revision ID: 0501
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0501'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('customer') as batch:
        batch.add_column(sa.Column('payment_customer_ref', sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('customer') as batch:
        batch.drop_column('payment_customer_ref')
