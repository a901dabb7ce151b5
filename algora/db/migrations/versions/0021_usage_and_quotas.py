"""usage per day, key and model (calls and compute seconds); quotas of organizations and keys"""

from __future__ import annotations

from alembic import op

from algora.db.migrations.columns import (
    big_integer,
    create_keyed_table,
    create_table,
    integer,
    real,
    string,
    timestamp,
)

revision = "0021"
down_revision = "0020"


def upgrade() -> None:
    create_table(
        "usage_daily",
        timestamp("day", primary_key=True),
        string("key_id", 32, primary_key=True),
        integer("model_id", primary_key=True, references="models.id"),
        integer("principal_id", references="principals.id"),
        integer("org_id", nullable=True, references="principals.id"),
        big_integer("calls"),
        big_integer("errors"),
        real("compute_seconds"),
        indexes={"ix_usage_daily_org_day": ("org_id", "day")},
    )
    create_keyed_table(
        "quotas",
        string("subject", 48),
        string("metric", 16),
        string("period", 8),
        real("amount"),
        integer("created_by", references="principals.id"),
        timestamp("created_at"),
        unique=[("subject", "metric", "period")],
    )


def downgrade() -> None:
    op.drop_table("quotas")
    op.drop_table("usage_daily")
