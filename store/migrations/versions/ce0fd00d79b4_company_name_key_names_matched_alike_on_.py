"""company name_key: imports match company names alike on SQLite and PostgreSQL (SQLite's
lower() lowers ASCII only, so `Östgöta Kök AB` was never found again and was duplicated)

Revision ID: ce0fd00d79b4
Revises: f07272ce991e
Create Date: 2026-12-07 16:21:30.923974
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from store.models import company_name_key

revision: str = 'ce0fd00d79b4'
down_revision: str | None = 'f07272ce991e'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index('ix_company_name_lower', table_name='company')  # an expression index: batch mode drops it unseen
    with op.batch_alter_table('company', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name_key', sqlmodel.sql.sqltypes.AutoString(), nullable=False,
                                      server_default=''))
    company = sa.table('company', sa.column('id', sa.Integer), sa.column('name', sa.String),
                       sa.column('name_key', sa.String))
    bind = op.get_bind()
    keys = [{"row_id": row_id, "key": company_name_key(name)}
            for row_id, name in bind.execute(sa.select(company.c.id, company.c.name))]
    if keys:
        bind.execute(company.update().where(company.c.id == sa.bindparam("row_id"))
                     .values(name_key=sa.bindparam("key")), keys)
    with op.batch_alter_table('company', schema=None) as batch_op:
        batch_op.alter_column('name_key', server_default=None)
        batch_op.create_index(batch_op.f('ix_company_name_key'), ['name_key'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('company', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_company_name_key'))
        batch_op.drop_column('name_key')
    op.create_index('ix_company_name_lower', 'company', [sa.text('lower(name)')], unique=False)
