"""the change epoch that tells every gateway on the registry to drop its caches"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from algora.db.migrations.columns import big_integer, create_table, integer

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    create_table(
        "cache_epoch",
        integer("id", primary_key=True),
        big_integer("epoch"),
    )
    op.execute(sa.text("INSERT INTO cache_epoch (id, epoch) VALUES (1, 0)"))


def downgrade() -> None:
    op.drop_table("cache_epoch")
