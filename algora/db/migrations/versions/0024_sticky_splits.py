"""sticky splits: an alias that splits its calls may keep each caller's key on one version"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"


def upgrade() -> None:
    with op.batch_alter_table("aliases") as batch:
        batch.add_column(
            sa.Column("sticky", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("aliases") as batch:
        batch.drop_column("sticky")
