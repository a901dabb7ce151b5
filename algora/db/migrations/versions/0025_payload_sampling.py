"""payload sampling: each model's sampling rule, and the index of the samples taken"""

from __future__ import annotations

from alembic import op

from algora.db.migrations.columns import (
    big_integer,
    create_keyed_table,
    create_table,
    flag,
    integer,
    json,
    real,
    string,
    timestamp,
)

revision = "0025"
down_revision = "0024"


def upgrade() -> None:
    create_table(
        "sampling_rules",
        integer("model_id", primary_key=True, references="models.id"),
        flag("enabled"),
        real("rate"),
        integer("max_bytes"),
        json("redact"),
        timestamp("updated_at"),
        string("updated_by", 255),
    )
    create_keyed_table(
        "payload_samples",
        integer("model_id", references="models.id"),
        integer("version_id", references="versions.id"),
        string("request_id", 128),
        string("alias", 64),
        string("caller", 255),
        timestamp("created_at"),
        string("input_type", 16),
        string("output_type", 16),
        big_integer("input_bytes"),
        big_integer("output_bytes"),
        flag("truncated"),
        string("error_code", 64),
        string("key", 255),
        indexes={
            "ix_payload_samples_model_time": ["model_id", "created_at"],
            "ix_payload_samples_model_request": ["model_id", "request_id"],
            "ix_payload_samples_created_at": ["created_at"],
        },
    )


def downgrade() -> None:
    op.drop_table("payload_samples")
    op.drop_table("sampling_rules")
