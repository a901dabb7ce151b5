"""rate limits"""

from __future__ import annotations

from alembic import op

from algora.db.migrations.columns import create_keyed_table, integer, real, string

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    for table in ("api_keys", "principals"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(real("rate_per_second", nullable=True))
            batch_op.add_column(integer("burst", nullable=True))
    create_keyed_table(
        "key_model_limits",
        integer("key_id", references="api_keys.id"),
        string("pattern", 129),
        real("rate_per_second"),
        integer("burst", nullable=True),
        unique=[("key_id", "pattern")],
    )


def downgrade() -> None:
    op.drop_table("key_model_limits")
    for table in ("principals", "api_keys"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("burst")
            batch_op.drop_column("rate_per_second")
