"""per-minute call statistics of each version; aliases that split and shadow traffic"""

from __future__ import annotations

from alembic import op

from algora.db.migrations.columns import (
    big_integer,
    create_keyed_table,
    create_table,
    flag,
    integer,
    real,
    timestamp,
)

revision = "0013"
down_revision = "0012"

_COUNTS = (
    "calls",
    "model_errors",
    "timeouts",
    "unavailable",
    "other_errors",
)
_BUCKETS = (
    "le_1ms",
    "le_2_5ms",
    "le_5ms",
    "le_10ms",
    "le_25ms",
    "le_50ms",
    "le_100ms",
    "le_250ms",
    "le_500ms",
    "le_1s",
    "le_2_5s",
    "le_5s",
    "le_10s",
    "le_30s",
    "le_inf",
)


def upgrade() -> None:
    create_table(
        "call_stats",
        integer("version_id", primary_key=True, references="versions.id"),
        timestamp("minute", primary_key=True),
        integer("model_id", references="models.id"),
        *(big_integer(name) for name in _COUNTS),
        real("latency_sum"),
        big_integer("bytes_in"),
        big_integer("bytes_out"),
        *(big_integer(name) for name in _BUCKETS),
        indexes={"ix_call_stats_model_minute": ["model_id", "minute"]},
    )
    create_keyed_table(
        "alias_targets",
        integer("alias_id", references="aliases.id"),
        integer("version_id", references="versions.id"),
        integer("weight"),
        flag("shadow"),
        unique=[("alias_id", "version_id")],
    )


def downgrade() -> None:
    op.drop_table("alias_targets")
    op.drop_table("call_stats")
