"""aliases and promotion approvals"""

from __future__ import annotations

from alembic import op

from algora.db.migrations.columns import create_keyed_table, integer, model_id, string, timestamp

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    create_keyed_table(
        "aliases",
        model_id(),
        string("name", 32),
        integer("version_id", references="versions.id"),
        integer("updated_by", nullable=True, references="principals.id"),
        timestamp("created_at"),
        timestamp("updated_at"),
        unique=[("model_id", "name")],
    )
    create_keyed_table(
        "promotion_requests",
        model_id(),
        string("alias", 32),
        integer("version_id", references="versions.id"),
        integer("from_version_id", nullable=True, references="versions.id"),
        integer("requested_by", references="principals.id"),
        string("note", 500),
        string("status", 16),
        timestamp("created_at"),
        timestamp("expires_at"),
        integer("decided_by", nullable=True, references="principals.id"),
        timestamp("decided_at", nullable=True),
        string("decision_note", 500),
        indexes={"ix_promotion_requests_model_status": ["model_id", "status"]},
    )


def downgrade() -> None:
    op.drop_table("promotion_requests")
    op.drop_table("aliases")
