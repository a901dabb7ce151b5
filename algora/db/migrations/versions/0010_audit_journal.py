"""audit journal marks"""

from __future__ import annotations

from alembic import op

from algora.db.migrations.columns import big_integer, create_table, string

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    create_table(
        "audit_journal_marks",
        string("journal", 64, primary_key=True),
        big_integer("committed_bytes"),
    )


def downgrade() -> None:
    op.drop_table("audit_journal_marks")
