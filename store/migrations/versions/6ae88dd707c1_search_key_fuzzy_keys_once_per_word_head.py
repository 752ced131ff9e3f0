"""search_key: fuzzy keys once per word head, not per contact; one index for search_term's owners;
company names by lower case

Revision ID: 6ae88dd707c1
Revises: 256270a5afd0
Create Date: 2026-12-06 06:14:08.901972
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '6ae88dd707c1'
down_revision: str | None = '256270a5afd0'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TERM = sa.String(length=64).with_variant(sa.String(length=64, collation='C'), 'postgresql')
# The keys of each head (a word's first four letters, a three-letter word whole) the index holds:
# the head and its one-letter deletions, as store/search.py made them at this revision.
FILL_KEYS = """
WITH heads AS (
    SELECT DISTINCT substr(term, 1, 4) AS head FROM search_term
    WHERE length(term) >= 3 AND term NOT LIKE '~%' AND term NOT LIKE '@%' AND term NOT LIKE '#%'
)
INSERT INTO search_key (key, head)
SELECT '~' || head, head FROM heads
UNION SELECT '~' || substr(head, 2, 3), head FROM heads WHERE length(head) = 4
UNION SELECT '~' || substr(head, 1, 1) || substr(head, 3, 2), head FROM heads WHERE length(head) = 4
UNION SELECT '~' || substr(head, 1, 2) || substr(head, 4, 1), head FROM heads WHERE length(head) = 4
UNION SELECT '~' || substr(head, 1, 3), head FROM heads WHERE length(head) = 4
"""


def upgrade() -> None:
    op.create_table('search_key',
    sa.Column('key', TERM, nullable=False),
    sa.Column('head', TERM, nullable=False),
    sa.PrimaryKeyConstraint('key', 'head')
    )
    op.execute(FILL_KEYS)
    op.execute("DELETE FROM search_term WHERE term LIKE '~%'")  # the keys per contact, now per head
    with op.batch_alter_table('search_term', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_search_term_company_id'))
        batch_op.drop_index(batch_op.f('ix_search_term_contact_id'))
        batch_op.create_index('ix_search_term_owner', ['contact_id', 'company_id'], unique=False)
    op.create_index('ix_company_name_lower', 'company', [sa.text('lower(name)')], unique=False)


def downgrade() -> None:
    op.drop_index('ix_company_name_lower', table_name='company')
    with op.batch_alter_table('search_term', schema=None) as batch_op:
        batch_op.drop_index('ix_search_term_owner')
        batch_op.create_index(batch_op.f('ix_search_term_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_search_term_company_id'), ['company_id'], unique=False)
    op.drop_table('search_key')
    # the keys were per contact before: the next refresh indexes everything again
    op.execute("DELETE FROM search_term")
    op.execute("DELETE FROM search_state")
