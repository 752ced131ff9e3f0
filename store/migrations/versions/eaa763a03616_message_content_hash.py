"""message content hash: a reused Message-ID with other content is a new mail

Revision ID: eaa763a03616
Revises: b531412203b0
Create Date: 2026-12-06 02:47:30.731917
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import store.types


revision: str = 'eaa763a03616'
down_revision: str | None = 'b531412203b0'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('content_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('shares_id_with_id', sa.Integer(), nullable=True))
        batch_op.drop_index(batch_op.f('ix_message_message_id'))
        batch_op.create_index(batch_op.f('ix_message_message_id'), ['message_id'], unique=False)
        batch_op.create_unique_constraint('uq_message_content', ['message_id', 'content_hash'])
        batch_op.create_foreign_key('fk_message_shares_id_with_id', 'message', ['shares_id_with_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_constraint('fk_message_shares_id_with_id', type_='foreignkey')
        batch_op.drop_constraint('uq_message_content', type_='unique')
        batch_op.drop_index(batch_op.f('ix_message_message_id'))
        batch_op.create_index(batch_op.f('ix_message_message_id'), ['message_id'], unique=True)
        batch_op.drop_column('shares_id_with_id')
        batch_op.drop_column('content_hash')

