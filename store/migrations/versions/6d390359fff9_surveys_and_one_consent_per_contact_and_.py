"""surveys and one consent per contact and purpose

Revision ID: 6d390359fff9
Revises: 63c1f8da0eab
Create Date: 2026-12-06 05:12:56.069942
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import store.types


revision: str = '6d390359fff9'
down_revision: str | None = '63c1f8da0eab'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('survey',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('rep_id', sa.Integer(), nullable=True),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('language', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('ref', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('message_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('sent_at', store.types.UTCDateTime(), nullable=False),
    sa.Column('expires_at', store.types.UTCDateTime(), nullable=False),
    sa.Column('score', sa.Integer(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('answered_at', store.types.UTCDateTime(), nullable=True),
    sa.Column('answered_via', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('reply_message_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contact.id'], ),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversation.id'], ),
    sa.ForeignKeyConstraint(['rep_id'], ['rep.id'], ),
    sa.ForeignKeyConstraint(['reply_message_id'], ['message.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('conversation_id'),
    sa.UniqueConstraint('message_id'),
    sa.UniqueConstraint('ref')
    )
    with op.batch_alter_table('survey', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_survey_answered_at'), ['answered_at'], unique=False)
        batch_op.create_index('ix_survey_contact_sent', ['contact_id', 'sent_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_survey_rep_id'), ['rep_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_survey_sent_at'), ['sent_at'], unique=False)

    # one row per contact and purpose: keep the newest of any duplicates an old import left
    op.execute("DELETE FROM consent WHERE id NOT IN (SELECT MAX(id) FROM consent GROUP BY contact_id, purpose)")
    with op.batch_alter_table('consent', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_consent_contact_purpose', ['contact_id', 'purpose'])



def downgrade() -> None:
    with op.batch_alter_table('consent', schema=None) as batch_op:
        batch_op.drop_constraint('uq_consent_contact_purpose', type_='unique')

    with op.batch_alter_table('survey', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_survey_sent_at'))
        batch_op.drop_index(batch_op.f('ix_survey_rep_id'))
        batch_op.drop_index('ix_survey_contact_sent')
        batch_op.drop_index(batch_op.f('ix_survey_answered_at'))

    op.drop_table('survey')
