"""what models report about themselves (``algora.report``, Algorithmia's insights), per version,
minute and name"""

from __future__ import annotations

from alembic import op

from algora.db.migrations.columns import big_integer, create_table, integer, real, string, timestamp

revision = "0022"
down_revision = "0021"


def upgrade() -> None:
    create_table(
        "model_reports",
        integer("version_id", primary_key=True, references="versions.id"),
        timestamp("minute", primary_key=True),
        string("name", 64, primary_key=True),
        integer("model_id", references="models.id"),
        big_integer("count"),
        real("total"),
        real("minimum"),
        real("maximum"),
        indexes={"ix_model_reports_model_minute": ("model_id", "minute")},
    )


def downgrade() -> None:
    op.drop_table("model_reports")
