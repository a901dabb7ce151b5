"""drift: each version's reference profile, and its rows' counts per minute, feature and bin"""

from __future__ import annotations

from alembic import op

from algora.db.migrations.columns import (
    big_integer,
    create_table,
    integer,
    string,
    text,
    timestamp,
)

revision = "0026"
down_revision = "0025"


def upgrade() -> None:
    create_table(
        "drift_profiles",
        integer("version_id", primary_key=True, references="versions.id"),
        integer("model_id", references="models.id"),
        string("source", 16),
        integer("size"),
        text("features"),
        timestamp("created_at"),
    )
    create_table(
        "drift_counts",
        integer("version_id", primary_key=True, references="versions.id"),
        timestamp("minute", primary_key=True),
        string("feature", 80, primary_key=True),
        integer("bin", primary_key=True),
        integer("model_id", references="models.id"),
        big_integer("count"),
    )


def downgrade() -> None:
    op.drop_table("drift_counts")
    op.drop_table("drift_profiles")
