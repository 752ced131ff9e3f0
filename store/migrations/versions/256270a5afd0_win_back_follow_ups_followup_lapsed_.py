"""win-back follow-ups: followup.lapsed_since, one per lapse

Revision ID: 256270a5afd0
Revises: 6d390359fff9
Create Date: 2026-12-06 05:16:40.543903
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '256270a5afd0'
down_revision: str | None = '6d390359fff9'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('followup', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lapsed_since', sa.Date(), nullable=True))
        batch_op.create_index('uq_followup_lapse', ['contact_id', 'lapsed_since'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('followup', schema=None) as batch_op:
        batch_op.drop_index('uq_followup_lapse')
        batch_op.drop_column('lapsed_since')
