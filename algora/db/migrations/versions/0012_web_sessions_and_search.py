"""the web UI's sessions, and the catalog's search documents"""

from __future__ import annotations

from alembic import op

from algora.db.migrations.columns import (
    create_keyed_table,
    create_table,
    integer,
    string,
    text,
    timestamp,
)

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    create_keyed_table(
        "web_sessions",
        string("token_hash", 64, unique=True),
        integer("api_key_id", references="api_keys.id"),
        timestamp("created_at"),
        timestamp("expires_at"),
        indexes={"ix_web_sessions_expires_at": ["expires_at"]},
    )
    create_table(
        "model_search",
        integer("model_id", primary_key=True),
        string("signature", 64),
        integer("version_id", nullable=True),
        text("readme"),
        text("fields"),
        string("runtime", 32),
    )


def downgrade() -> None:
    op.drop_table("model_search")
    op.drop_index("ix_web_sessions_expires_at", "web_sessions")
    op.drop_table("web_sessions")
