"""principals, memberships, grants and scoped keys"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from algora.db.migrations.columns import create_keyed_table, integer, model_id, string, timestamp

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("principals", schema=None) as batch_op:
        batch_op.add_column(integer("owner_id", nullable=True))
        batch_op.create_foreign_key("fk_principals_owner_id", "principals", ["owner_id"], ["id"])
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(string("last_used_address", 64, nullable=True))
        batch_op.add_column(
            sa.Column("model_calls_only", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    create_keyed_table(
        "memberships",
        integer("org_id", references="principals.id"),
        integer("member_id", references="principals.id"),
        string("role", 16),
        timestamp("created_at"),
        unique=[("org_id", "member_id")],
        indexes={"ix_memberships_org_id": ["org_id"], "ix_memberships_member_id": ["member_id"]},
    )
    create_keyed_table(
        "grants",
        model_id(),
        integer("grantee_id", references="principals.id"),
        string("right", 16),
        timestamp("created_at"),
        unique=[("model_id", "grantee_id")],
        indexes={"ix_grants_model_id": ["model_id"]},
    )


def downgrade() -> None:
    op.drop_table("grants")
    op.drop_table("memberships")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("model_calls_only")
        batch_op.drop_column("last_used_address")
    with op.batch_alter_table("principals", schema=None) as batch_op:
        batch_op.drop_constraint("fk_principals_owner_id", type_="foreignkey")
        batch_op.drop_column("owner_id")
