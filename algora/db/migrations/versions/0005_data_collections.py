"""hosted data collections and their read ACLs"""

from __future__ import annotations

from alembic import op

from algora.db.migrations.columns import create_keyed_table, integer, json, string, timestamp

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    create_keyed_table(
        "data_collections",
        integer("owner_id", references="principals.id"),
        string("name", 64),
        json("read_acl"),
        timestamp("created_at"),
        unique=[("owner_id", "name")],
    )


def downgrade() -> None:
    op.drop_table("data_collections")
