"""activity moves: contact kind and buying stage before and after

Revision ID: 531a8e4ba685
Revises: eaa763a03616
Create Date: 2026-12-06 05:12:48.596819
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import store.types


revision: str = '531a8e4ba685'
down_revision: str | None = 'eaa763a03616'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('activity', schema=None) as batch_op:
        batch_op.add_column(sa.Column('contact_kind_from', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('contact_kind_to', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('stage_from', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('stage_to', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.create_index('ix_activity_kind_time', ['kind', 'occurred_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('activity', schema=None) as batch_op:
        batch_op.drop_index('ix_activity_kind_time')
        batch_op.drop_column('stage_to')
        batch_op.drop_column('stage_from')
        batch_op.drop_column('contact_kind_to')
        batch_op.drop_column('contact_kind_from')

