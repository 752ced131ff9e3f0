"""search_term without an id column: nothing reads a term by id, and an import paid for its
sequence and primary-key index on every term

Revision ID: f07272ce991e
Revises: 6ae88dd707c1
Create Date: 2026-12-06 08:24:59.897487
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'f07272ce991e'
down_revision: str | None = '6ae88dd707c1'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('search_term', schema=None) as batch_op:
        batch_op.drop_column('id')


def downgrade() -> None:
    # the terms are derived data: emptied, the next refresh indexes everything again
    op.execute("DELETE FROM search_term")
    op.execute("DELETE FROM search_state")
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("ALTER TABLE search_term ADD COLUMN id SERIAL PRIMARY KEY")
    else:
        with op.batch_alter_table('search_term', schema=None) as batch_op:
            batch_op.add_column(sa.Column('id', sa.Integer(), nullable=False))
            batch_op.create_primary_key('pk_search_term', ['id'])
