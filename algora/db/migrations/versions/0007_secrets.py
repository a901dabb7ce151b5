"""model secrets, encrypted at rest; the profiles Algorithmia's API keeps of users and orgs

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 04:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_secrets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("env_name", sa.String(length=128), nullable=False),
        sa.Column("short_name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"]),
        sa.ForeignKeyConstraint(["created_by"], ["principals.id"]),
        sa.ForeignKeyConstraint(["updated_by"], ["principals.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model_id", "env_name"),
    )
    with op.batch_alter_table("model_secrets", schema=None) as batch_op:
        batch_op.create_index("ix_model_secrets_model_id", ["model_id"], unique=False)
    op.create_table(
        "principal_profiles",
        sa.Column("principal_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("full_name", sa.String(length=128), nullable=False),
        sa.Column("contact_name", sa.String(length=128), nullable=False),
        sa.Column("url", sa.String(length=512), nullable=False),
        sa.Column("company_name", sa.String(length=128), nullable=False),
        sa.Column("company_role", sa.String(length=128), nullable=False),
        sa.Column("org_type", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["principal_id"], ["principals.id"]),
        sa.PrimaryKeyConstraint("principal_id"),
    )


def downgrade() -> None:
    op.drop_table("principal_profiles")
    with op.batch_alter_table("model_secrets", schema=None) as batch_op:
        batch_op.drop_index("ix_model_secrets_model_id")
    op.drop_table("model_secrets")
