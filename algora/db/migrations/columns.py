"""The columns and tables the migrations repeat, built in one place.

A migration is history: a database that ran it must look like one that runs it today. So these
builders never change what they build; a column of a new kind gets a new builder.

:func:`create_table` writes each table's statement as the migrations always have (columns,
primary key, foreign keys, unique constraints; then the indexes): SQLite keeps that statement, to
the order of its constraints, as the table's schema.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, TypedDict, Unpack

import sqlalchemy as sa
from alembic import op

Column = sa.Column[Any]

_REFERENCES = "references"
"""The key of ``Column.info`` that holds the ``table.column`` a column is a foreign key to."""


_Kind = sa.types.TypeEngine[Any] | type[sa.types.TypeEngine[Any]]


class Options(TypedDict, total=False):
    nullable: bool
    """Whether the column may be NULL (default: not)."""
    references: str
    """``table.column``: make the column a foreign key to it."""
    primary_key: bool
    unique: bool
    """Whether no two rows may share a value (a constraint of the table, after its foreign keys)."""


def column(name: str, kind: _Kind, **options: Unpack[Options]) -> Column:
    """A column of type ``kind`` (a class: one instance per column), not NULL unless said."""
    references = options.get("references")
    return sa.Column(
        name,
        kind,
        primary_key=options.get("primary_key", False),
        nullable=options.get("nullable", False),
        unique=options.get("unique", False),
        info={_REFERENCES: references} if references else {},
    )


integer = partial(column, kind=sa.Integer)
big_integer = partial(column, kind=sa.BigInteger)
real = partial(column, kind=sa.Float)
flag = partial(column, kind=sa.Boolean)
text = partial(column, kind=sa.Text)
json = partial(column, kind=sa.JSON)
timestamp = partial(column, kind=sa.DateTime)


def string(name: str, length: int, **options: Unpack[Options]) -> Column:
    return column(name, sa.String(length=length), **options)


def model_id(*, unique: bool = False) -> Column:
    """The column of a table whose rows belong to a model (``unique``: one row a model)."""
    return integer("model_id", references="models.id", unique=unique)


def create_table(
    name: str,
    *items: Column | sa.Constraint,
    unique: Sequence[Sequence[str]] = (),
    indexes: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Create table ``name`` from ``items``: its columns (one of them its primary key), then any
    constraints given as they are.

    Each column built with ``references`` becomes a foreign key, in the order of the columns,
    after the constraints given; ``unique`` lists the sets of columns that are unique together (a
    column unique by itself says so), ``indexes``
    maps an index's name to its columns.
    """
    columns = [item for item in items if isinstance(item, sa.Column)]
    op.create_table(
        name,
        *items,
        *(
            sa.ForeignKeyConstraint([c.name], [c.info[_REFERENCES]])
            for c in columns
            if _REFERENCES in c.info
        ),
        *(sa.UniqueConstraint(*names) for names in unique),
    )
    for index, indexed in (indexes or {}).items():
        op.create_index(index, name, list(indexed))


def create_keyed_table(
    name: str,
    *items: Column | sa.Constraint,
    unique: Sequence[Sequence[str]] = (),
    indexes: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """:func:`create_table`, keyed by an integer ``id`` that comes first: most tables are."""
    create_table(name, integer("id", primary_key=True), *items, unique=unique, indexes=indexes)
