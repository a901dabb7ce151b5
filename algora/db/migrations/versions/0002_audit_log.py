"""audit log"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from algora.db.migrations.columns import big_integer, create_table, integer, real, string, timestamp

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    create_table(
        "audit_events",
        # 64-bit on PostgreSQL; SQLite's INTEGER is 64-bit already (and stays the rowid).
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            primary_key=True,
            nullable=False,
        ),
        timestamp("received_at"),
        timestamp("completed_at"),
        string("principal", 64, nullable=True),
        integer("principal_id", nullable=True),
        string("key_id", 32, nullable=True),
        string("auth_method", 8),
        string("peer", 64, nullable=True),
        string("forwarded_for", 255, nullable=True),
        string("action", 64),
        string("resource", 255, nullable=True),
        string("version", 64, nullable=True),
        string("request_id", 128, nullable=True),
        string("parent_request_id", 128, nullable=True),
        string("decision", 8),
        integer("status"),
        string("error_code", 64, nullable=True),
        real("latency_ms"),
        big_integer("bytes_in", nullable=True),
        big_integer("bytes_out", nullable=True),
        string("prev_hash", 64),
        string("hash", 64),
        indexes={
            "ix_audit_events_principal_received": ["principal", "received_at"],
            "ix_audit_events_resource_received": ["resource", "received_at"],
        },
    )


def downgrade() -> None:
    op.drop_table("audit_events")
