"""aliases and promotion approvals"""

from __future__ import annotations

from alembic import op

from algora.db.migrations.columns import create_keyed_table, integer, string, timestamp

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    create_keyed_table(
        "aliases",
        integer("model_id"),
        string("name", 32),
        integer("version_id"),
        integer("updated_by", nullable=True),
        timestamp("created_at"),
        timestamp("updated_at"),
        references={
            "model_id": "models.id",
            "version_id": "versions.id",
            "updated_by": "principals.id",
        },
        unique=[("model_id", "name")],
    )
    create_keyed_table(
        "promotion_requests",
        integer("model_id"),
        string("alias", 32),
        integer("version_id"),
        integer("from_version_id", nullable=True),
        integer("requested_by"),
        string("note", 500),
        string("status", 16),
        timestamp("created_at"),
        timestamp("expires_at"),
        integer("decided_by", nullable=True),
        timestamp("decided_at", nullable=True),
        string("decision_note", 500),
        references={
            "model_id": "models.id",
            "version_id": "versions.id",
            "from_version_id": "versions.id",
            "requested_by": "principals.id",
            "decided_by": "principals.id",
        },
        indexes={"ix_promotion_requests_model_status": ["model_id", "status"]},
    )


def downgrade() -> None:
    op.drop_table("promotion_requests")
    op.drop_table("aliases")
