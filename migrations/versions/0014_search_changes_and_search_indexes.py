"""search: search_changes (the index's feed) and search_indexes (each index's progress)

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-27 13:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

CHANGE_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    op.create_table('search_changes',
    sa.Column('id', CHANGE_ID, autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('key', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_search_changes')),
    sqlite_autoincrement=True
    )
    op.create_table('search_indexes',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('directory', sa.String(length=1000), nullable=False),
    sa.Column('applied', CHANGE_ID, nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_search_indexes'))
    )


def downgrade():
    op.drop_table('search_indexes')
    op.drop_table('search_changes')
