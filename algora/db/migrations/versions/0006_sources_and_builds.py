"""model source repositories and their builds"""

from __future__ import annotations

from alembic import op

from algora.db.migrations.columns import (
    create_keyed_table,
    integer,
    json,
    model_id,
    string,
    text,
    timestamp,
)

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    create_keyed_table(
        "model_sources",
        model_id(unique=True),
        string("default_branch", 255),
        string("language", 32),
        integer("created_by", nullable=True, references="principals.id"),
        timestamp("created_at"),
    )
    create_keyed_table(
        "builds",
        string("build_id", 36, unique=True),
        model_id(),
        string("commit_sha", 64),
        string("trigger", 16),
        string("status", 16),
        integer("started_by", nullable=True, references="principals.id"),
        timestamp("started_at"),
        timestamp("finished_at", nullable=True),
        text("log"),
        string("failure_code", 64, nullable=True),
        text("failure_reason", nullable=True),
        json("manifest", nullable=True),
        string("content_hash", 64, nullable=True),
        string("archive_hash", 64, nullable=True),
        string("environment_hash", 64, nullable=True, references="environments.hash"),
        json("input_schema", nullable=True),
        json("output_schema", nullable=True),
        json("lineage"),
        integer("version_id", nullable=True, references="versions.id", unique=True),
        indexes={
            "ix_builds_model_started": ["model_id", "started_at"],
            "ix_builds_status": ["status"],
        },
    )
    with op.batch_alter_table("versions") as batch:
        batch.add_column(text("release_notes", nullable=True))
        batch.add_column(text("sample_input", nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.drop_column("sample_input")
        batch.drop_column("release_notes")
    op.drop_table("builds")
    op.drop_table("model_sources")
