"""model secrets, encrypted at rest; the profiles Algorithmia's API keeps of users and orgs"""

from __future__ import annotations

from alembic import op

from algora.db.migrations.columns import (
    create_keyed_table,
    create_table,
    integer,
    model_id,
    string,
    text,
    timestamp,
)

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    create_keyed_table(
        "model_secrets",
        model_id(),
        string("env_name", 128),
        string("short_name", 64),
        string("description", 500),
        text("sealed"),
        string("key_id", 16),
        integer("created_by", nullable=True, references="principals.id"),
        integer("updated_by", nullable=True, references="principals.id"),
        timestamp("created_at"),
        timestamp("updated_at"),
        unique=[("model_id", "env_name")],
        indexes={"ix_model_secrets_model_id": ["model_id"]},
    )
    create_table(
        "principal_profiles",
        integer("principal_id", references="principals.id", primary_key=True),
        string("email", 254),
        string("full_name", 128),
        string("contact_name", 128),
        string("url", 512),
        string("company_name", 128),
        string("company_role", 128),
        string("org_type", 16),
        timestamp("updated_at"),
    )


def downgrade() -> None:
    op.drop_table("principal_profiles")
    op.drop_table("model_secrets")
