"""The migrations build the schema that ``algora/db/tables.py`` declares, on each database."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Double, Float, inspect

import algora.db.alerting
import algora.db.sampling  # its tables join Base's metadata
import algora.db.shared_state  # noqa: F401  (its tables join Base's metadata)
from algora.db.engine import create_registry_engine
from algora.db.migrate import _config, upgrade
from algora.db.tables import Base

from ..conftest import DATABASES, database_url


def _alike(difference: object) -> bool:
    """A ``float`` column: the migrations create FLOAT, the declarations map ``float`` to
    Double. PostgreSQL makes both double precision; SQLite keeps the name it was given, and
    stores either as REAL, so there the two differ in name only."""
    match difference:
        case [("modify_type", _, _, _, _, Float() as found, Double())]:
            return not isinstance(found, Double)
    return False


@pytest.mark.parametrize("kind", DATABASES)
def test_the_migrated_schema_is_the_declared_one(kind: str, tmp_path: Path) -> None:
    with database_url(kind) as url:
        engine = create_registry_engine(url or f"sqlite:///{tmp_path / 'registry.db'}")
        try:
            upgrade(engine)
            with engine.connect() as connection:
                context = MigrationContext.configure(connection, opts={"compare_type": True})
                assert [d for d in compare_metadata(context, Base.metadata) if not _alike(d)] == []
        finally:
            engine.dispose()


@pytest.mark.parametrize("kind", DATABASES)
def test_every_migration_runs_down_to_nothing_and_up_again(kind: str, tmp_path: Path) -> None:
    with database_url(kind) as url:
        engine = create_registry_engine(url or f"sqlite:///{tmp_path / 'registry.db'}")
        try:
            upgrade(engine)
            config = _config()
            with engine.begin() as connection:
                config.attributes["connection"] = connection
                command.downgrade(config, "base")
            with engine.connect() as connection:
                assert inspect(connection).get_table_names() == ["alembic_version"]
            upgrade(engine)
            with engine.connect() as connection:
                assert set(Base.metadata.tables) < set(inspect(connection).get_table_names())
        finally:
            engine.dispose()
