"""what models that opted in answered, per call, for ground-truth feedback and comparisons"""

from __future__ import annotations

from alembic import op

from algora.db.migrations.columns import (
    create_keyed_table,
    flag,
    integer,
    real,
    string,
    text,
    timestamp,
)

revision = "0023"
down_revision = "0022"


def upgrade() -> None:
    create_keyed_table(
        "call_records",
        string("request_id", 128),
        flag("shadow"),
        integer("model_id", references="models.id"),
        integer("version_id", references="versions.id"),
        string("alias", 64),
        string("caller", 255),
        timestamp("created_at"),
        text("output", nullable=True),
        text("label", nullable=True),
        real("value", nullable=True),
        timestamp("feedback_at", nullable=True),
        string("feedback_by", 255, nullable=True),
        flag("correct", nullable=True),
        real("abs_error", nullable=True),
        unique=[("request_id", "shadow")],
        indexes={
            "ix_call_records_model_time": ["model_id", "created_at"],
            "ix_call_records_created_at": ["created_at"],
        },
    )


def downgrade() -> None:
    op.drop_table("call_records")
