"""gateway leases, and which gateway builds each version and source build in progress"""

from __future__ import annotations

from alembic import op

from algora.db.migrations.columns import create_table, integer, string, timestamp

revision = "0020"
down_revision = "0014"


def upgrade() -> None:
    create_table(
        "gateway_leases",
        string("instance", 32, primary_key=True),
        string("host", 255),
        integer("pid"),
        timestamp("started_at"),
        timestamp("renewed_at"),
    )
    for table in ("versions", "builds"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(string("builder", 32, nullable=True))


def downgrade() -> None:
    for table in ("builds", "versions"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("builder")
    op.drop_table("gateway_leases")
