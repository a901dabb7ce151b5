"""The columns and tables the migrations repeat, built in one place.

A migration is history: a database that ran it must look like one that runs it today. So these
builders never change what they build; a column of a new kind gets a new builder.

``create_table`` writes a table in the order the migrations always have (columns, foreign keys,
primary key, unique constraints, then indexes); SQLite keeps that statement as the table's schema.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import sqlalchemy as sa
from alembic import op

Column = sa.Column[Any]


class _Builder(Protocol):
    def __call__(self, name: str, *, nullable: bool = False) -> Column: ...


def _of(kind: type[sa.types.TypeEngine[Any]]) -> _Builder:
    def build(name: str, *, nullable: bool = False) -> Column:
        return sa.Column(name, kind(), nullable=nullable)

    return build


integer = _of(sa.Integer)
big_integer = _of(sa.BigInteger)
real = _of(sa.Float)
text = _of(sa.Text)
json = _of(sa.JSON)
timestamp = _of(sa.DateTime)


def flag(name: str) -> Column:
    return sa.Column(name, sa.Boolean(), nullable=False)


def string(name: str, length: int, *, nullable: bool = False) -> Column:
    return sa.Column(name, sa.String(length=length), nullable=nullable)


def create_table(
    name: str,
    *columns: Column,
    key: str = "id",
    references: Mapping[str, str] | None = None,
    unique: Sequence[Sequence[str]] = (),
    indexes: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Create table ``name`` with ``columns``, keyed by the column ``key``.

    ``references`` maps a column to the ``table.column`` it is a foreign key to, ``unique``
    lists the column sets that are unique, ``indexes`` maps an index's name to its columns.
    """
    op.create_table(
        name,
        *columns,
        *(sa.ForeignKeyConstraint([c], [target]) for c, target in (references or {}).items()),
        sa.PrimaryKeyConstraint(key),
        *(sa.UniqueConstraint(*names) for names in unique),
    )
    for index, indexed in (indexes or {}).items():
        op.create_index(index, name, list(indexed))


def create_keyed_table(
    name: str,
    *columns: Column,
    references: Mapping[str, str] | None = None,
    unique: Sequence[Sequence[str]] = (),
    indexes: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """:func:`create_table`, keyed by an integer ``id`` that comes first: most tables are."""
    create_table(
        name, integer("id"), *columns, references=references, unique=unique, indexes=indexes
    )
