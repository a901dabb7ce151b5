"""alert rules on models' signals, their state, and their deliveries to webhooks"""

from __future__ import annotations

from alembic import op

from algora.db.migrations.columns import (
    create_keyed_table,
    integer,
    json,
    model_id,
    real,
    string,
    text,
    timestamp,
)

revision = "0027"
down_revision = "0026"


def upgrade() -> None:
    create_keyed_table(
        "alert_rules",
        model_id(),
        string("signal", 32),
        string("comparison", 8),
        real("threshold"),
        integer("window_seconds"),
        string("version", 64, nullable=True),
        string("alias", 64, nullable=True),
        integer("min_calls"),
        string("webhook_url", 2048),
        text("secret_sealed"),
        string("secret_key_id", 16),
        integer("created_by", nullable=True, references="principals.id"),
        timestamp("created_at"),
        string("state", 16),
        real("last_value", nullable=True),
        integer("last_count"),
        timestamp("evaluated_at", nullable=True),
        string("claimed_by", 32, nullable=True),
        timestamp("claimed_until", nullable=True),
        indexes={"ix_alert_rules_model": ["model_id"]},
    )
    create_keyed_table(
        "alert_deliveries",
        string("delivery_id", 40, unique=True),
        integer("rule_id", references="alert_rules.id"),
        model_id(),
        string("state", 16),
        real("value", nullable=True),
        text("body"),
        string("status", 16),
        integer("tries"),
        json("attempts"),
        timestamp("created_at"),
        timestamp("next_attempt_at"),
        timestamp("claimed_until", nullable=True),
        indexes={
            "ix_alert_deliveries_rule": ["rule_id"],
            "ix_alert_deliveries_due": ["status", "next_attempt_at"],
        },
    )


def downgrade() -> None:
    op.drop_table("alert_deliveries")
    op.drop_table("alert_rules")
