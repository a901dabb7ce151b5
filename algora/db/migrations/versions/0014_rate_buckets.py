"""rate-limit token buckets in the registry, shared by every gateway on it"""

from __future__ import annotations

from alembic import op

from algora.db.migrations.columns import create_table, real, string

revision = "0014"
down_revision = "0013"


def upgrade() -> None:
    create_table(
        "rate_buckets",
        string("key_id", 32, primary_key=True),
        string("scope", 129, primary_key=True),
        real("tokens"),
        real("stamp"),
    )


def downgrade() -> None:
    op.drop_table("rate_buckets")
