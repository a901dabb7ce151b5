"""initial registry"""

from __future__ import annotations

from alembic import op

from algora.db.migrations.columns import (
    create_keyed_table,
    create_table,
    flag,
    integer,
    json,
    string,
    text,
    timestamp,
)

revision = "0001"
down_revision = None


def upgrade() -> None:
    create_table(
        "environments",
        string("hash", 64),
        string("python_version", 32),
        text("lock"),
        timestamp("created_at"),
        key="hash",
    )
    create_keyed_table(
        "principals",
        string("name", 64),
        string("kind", 16),
        flag("is_admin"),
        timestamp("created_at"),
        unique=[("name",)],
    )
    create_keyed_table(
        "api_keys",
        string("key_id", 32),
        string("key_hash", 64),
        integer("principal_id"),
        string("name", 128),
        json("scopes"),
        timestamp("created_at"),
        timestamp("expires_at", nullable=True),
        timestamp("revoked_at", nullable=True),
        timestamp("last_used_at", nullable=True),
        references={"principal_id": "principals.id"},
        unique=[("key_hash",), ("key_id",)],
    )
    create_keyed_table(
        "models",
        integer("owner_id"),
        string("name", 64),
        text("description"),
        string("visibility", 16),
        json("tags"),
        flag("deprecated"),
        timestamp("created_at"),
        references={"owner_id": "principals.id"},
        unique=[("owner_id", "name")],
    )
    create_keyed_table(
        "versions",
        integer("model_id"),
        integer("major"),
        integer("minor"),
        integer("patch"),
        string("status", 16),
        string("content_hash", 64, nullable=True),
        string("archive_hash", 64, nullable=True),
        string("environment_hash", 64, nullable=True),
        json("manifest"),
        json("input_schema", nullable=True),
        json("output_schema", nullable=True),
        json("lineage"),
        text("build_log"),
        text("failure_reason", nullable=True),
        string("failure_code", 64, nullable=True),
        flag("deprecated"),
        integer("published_by", nullable=True),
        timestamp("created_at"),
        timestamp("ready_at", nullable=True),
        references={
            "environment_hash": "environments.hash",
            "model_id": "models.id",
            "published_by": "principals.id",
        },
        unique=[("model_id", "major", "minor", "patch")],
        indexes={
            "ix_versions_content_hash": ["content_hash"],
            "ix_versions_model_status": ["model_id", "status"],
        },
    )


def downgrade() -> None:
    for table in ("versions", "models", "api_keys", "principals", "environments"):
        op.drop_table(table)
