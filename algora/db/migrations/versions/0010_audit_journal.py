"""audit journal marks

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 10:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_journal_marks",
        sa.Column("journal", sa.String(length=64), nullable=False),
        sa.Column("committed_bytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("journal"),
    )


def downgrade() -> None:
    op.drop_table("audit_journal_marks")
