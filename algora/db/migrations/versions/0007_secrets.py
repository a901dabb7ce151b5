"""model secrets, encrypted at rest; the profiles Algorithmia's API keeps of users and orgs"""

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

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    create_keyed_table(
        "model_secrets",
        integer("model_id"),
        string("env_name", 128),
        string("short_name", 64),
        string("description", 500),
        text("sealed"),
        string("key_id", 16),
        integer("created_by", nullable=True),
        integer("updated_by", nullable=True),
        timestamp("created_at"),
        timestamp("updated_at"),
        references={
            "model_id": "models.id",
            "created_by": "principals.id",
            "updated_by": "principals.id",
        },
        unique=[("model_id", "env_name")],
        indexes={"ix_model_secrets_model_id": ["model_id"]},
    )
    create_table(
        "principal_profiles",
        integer("principal_id"),
        string("email", 254),
        string("full_name", 128),
        string("contact_name", 128),
        string("url", 512),
        string("company_name", 128),
        string("company_role", 128),
        string("org_type", 16),
        timestamp("updated_at"),
        key="principal_id",
        references={"principal_id": "principals.id"},
    )


def downgrade() -> None:
    op.drop_table("principal_profiles")
    op.drop_table("model_secrets")
