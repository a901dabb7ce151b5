"""gateway leases, which gateway builds each version and source build in progress, and when
a shared rate-limit bucket is full again (so that full ones can be pruned)"""

from __future__ import annotations

from alembic import op

from algora.db.migrations.columns import create_table, integer, real, string, timestamp

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
    with op.batch_alter_table("rate_buckets") as batch:
        batch.add_column(real("full_at", nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rate_buckets") as batch:
        batch.drop_column("full_at")
    for table in ("builds", "versions"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("builder")
    op.drop_table("gateway_leases")
