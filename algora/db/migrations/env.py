"""Alembic environment: runs on the connection that ``algora.db.migrate`` hands over."""

from __future__ import annotations

from alembic import context

import algora.db.alerting
import algora.db.sampling
import algora.db.shared_state  # noqa: F401  (its tables join Base's metadata)
from algora.db.tables import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
