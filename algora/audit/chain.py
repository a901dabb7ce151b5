"""The audit chain's rows: canonical form, hashes, and appending a batch to the database.

``hash = sha256(prev_hash + canonical)`` where ``canonical`` is the compact JSON array
(``separators=(",", ":")``, ASCII) of the row's fields in :data:`FIELDS` order, id first, times
as naive UTC ISO 8601 with microseconds; the first row's ``prev_hash`` is 64 zeros.

A row travels as its *wire* values: the fields after ``id`` in :data:`FIELDS` order, times as
integer microseconds since the Unix epoch (UTC). :func:`append` gives a batch of them the next
ids (last id + 1, so the ids are gapless) and their hashes under the database's write lock
(``BEGIN IMMEDIATE`` on SQLite, a transaction-scoped advisory lock on PostgreSQL), so any number
of writers, in any number of processes, extend one chain.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from algora.db.tables import AuditEventRow, AuditJournalMark

__all__ = [
    "FIELDS",
    "FIELD_KINDS",
    "GENESIS_HASH",
    "Wire",
    "append",
    "append_sqlite",
    "bindable",
    "canonical_time",
    "canonical_value",
    "chain_hash",
    "check_wire",
    "epoch_micros",
    "head",
    "row_fields",
    "sqlite_driver",
]

GENESIS_HASH = "0" * 64
FIELDS = (
    "id",
    "received_at",
    "completed_at",
    "principal",
    "principal_id",
    "key_id",
    "auth_method",
    "peer",
    "forwarded_for",
    "action",
    "resource",
    "version",
    "request_id",
    "parent_request_id",
    "decision",
    "status",
    "error_code",
    "latency_ms",
    "bytes_in",
    "bytes_out",
)
Wire = Sequence[Any]
"""A row's values after ``id``, in :data:`FIELDS` order, times as :func:`canonical_time`."""

# Any constant shared by every gateway: the key of PostgreSQL's advisory lock on the chain.
_PG_CHAIN_LOCK = 0x616C676F7261  # "algora"
_COLUMNS = (*FIELDS, "prev_hash", "hash")
"""The row's columns in the order its values are bound (the table's own order; a test checks)."""
# The SQLite hot path binds rows straight to the driver; its statements are still SQLAlchemy's,
# compiled once from the tables in algora.db.tables, so that the schema has one definition.
_SQLITE = sqlite_dialect.dialect(paramstyle="qmark")
_INSERT_SQLITE = str(insert(AuditEventRow).compile(dialect=_SQLITE, column_keys=list(_COLUMNS)))
_SELECT_HEAD = str(
    select(AuditEventRow.id, AuditEventRow.hash)
    .order_by(AuditEventRow.id.desc())
    .limit(1)
    .compile(dialect=_SQLITE, compile_kwargs={"literal_binds": True})
)
_upsert_mark = sqlite_insert(AuditJournalMark)
_SET_MARK = str(
    _upsert_mark.on_conflict_do_update(
        index_elements=[AuditJournalMark.journal],
        set_={"committed_bytes": _upsert_mark.excluded.committed_bytes},
    ).compile(dialect=_SQLITE)
)
# What the table takes at each of the wire's positions (FIELDS without id): "int" and "text"
# required, "int?" and "text?" nullable, "number" a finite float or int.
_KINDS = {
    **dict.fromkeys(FIELDS[1:], "text?"),
    **dict.fromkeys(("received_at", "completed_at", "status"), "int"),
    **dict.fromkeys(("principal_id", "bytes_in", "bytes_out"), "int?"),
    **dict.fromkeys(("auth_method", "action", "decision"), "text"),
    "latency_ms": "number",
}
FIELD_KINDS = dict(_KINDS)
"""What each field after ``id`` holds (the times: integer microseconds on the wire)."""
_WIRE_KINDS = tuple(zip(FIELDS[1:], (_KINDS[name] for name in FIELDS[1:]), strict=True))
_INT64 = range(-(2**63), 2**63)
_MAX_MICROS = 253402300799999999  # 9999-12-31T23:59:59.999999, datetime's last
_encode_canonical = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode


_EPOCH = datetime(1970, 1, 1)  # naive UTC, as the rows keep their times
_MICROSECOND = timedelta(microseconds=1)


def epoch_micros(value: datetime) -> int:
    """A UTC time (aware or naive) as integer microseconds since the epoch, exactly."""
    return (value.replace(tzinfo=None) - _EPOCH) // _MICROSECOND


def canonical_time(micros: int) -> str:
    """A wire time as the chain hashes it: naive UTC ISO 8601 with microseconds."""
    return (_EPOCH + timedelta(microseconds=micros)).isoformat(timespec="microseconds")


def canonical_value(value: Any) -> Any:
    """A field as the chain hashes it (times in ISO 8601 with microseconds)."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    return value


def row_fields(source: Any, row_id: int) -> dict[str, Any]:
    """The hashed fields of a row or event (everything but the hashes), in canonical form."""
    return {
        name: row_id if name == "id" else canonical_value(getattr(source, name)) for name in FIELDS
    }


def chain_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """sha256 of the previous hash and the row's canonical fields, in ``FIELDS`` order."""
    return _hash_values(prev_hash, [fields[name] for name in FIELDS])


def _hash_values(prev_hash: str, values: Sequence[Any]) -> str:
    canonical = _encode_canonical(values)
    return hashlib.sha256((prev_hash + canonical).encode("ascii")).hexdigest()


def check_wire(wire: Any) -> None:
    """Raise ValueError unless ``wire`` is a row the database will take.

    The writer acknowledges a row before committing it (see :mod:`algora.audit.journal`), so a
    row that could never be committed must be refused before it is acknowledged.
    """
    if not isinstance(wire, list) or len(wire) != len(_WIRE_KINDS):
        raise ValueError("not a row of the audit log")
    for value, (name, kind) in zip(wire, _WIRE_KINDS, strict=True):
        if value is None and kind.endswith("?"):
            continue
        if kind.startswith("int"):
            good = type(value) is int and value in _INT64
        elif kind.startswith("text"):
            good = type(value) is str
            if good:
                value.encode("utf-8")  # a lone surrogate: sqlite3 could not bind it
        else:  # ints beyond int64 (and floats beyond it) sqlite3 could not bind either
            good = (type(value) is float and math.isfinite(value)) or (
                type(value) is int and value in _INT64
            )
        if not good:
            raise ValueError(f"{name}: {type(value).__name__} is not what the table takes")
    if not (0 <= wire[0] <= _MAX_MICROS and 0 <= wire[1] <= _MAX_MICROS):
        raise ValueError("a time is out of range")


def bindable(wire: Wire) -> bool:
    """Whether sqlite3 can bind the row's values (tried on a database in memory)."""
    try:
        with contextlib.closing(sqlite3.connect(":memory:")) as memory:
            memory.execute(f"SELECT {', '.join(['?'] * len(wire))}", tuple(wire))
    except (sqlite3.Error, OverflowError, TypeError, ValueError):
        return False
    return True


def append(connection: Connection, wires: Sequence[Wire]) -> tuple[int, str]:
    """Append the rows in one transaction; return the new (last id, last hash)."""
    if connection.dialect.name == "sqlite":
        return append_sqlite(sqlite_driver(connection), wires)
    with connection.begin():
        connection.execute(select(func.pg_advisory_xact_lock(_PG_CHAIN_LOCK)))
        last_id, prev = head(connection)
        rows, last_id, prev = _chain_rows(wires, last_id, prev, sqlite=False)
        connection.execute(
            insert(AuditEventRow), [dict(zip(_COLUMNS, row, strict=True)) for row in rows]
        )
    return last_id, prev


def sqlite_driver(connection: Connection) -> sqlite3.Connection:
    """The sqlite3 connection under a SQLAlchemy connection to SQLite."""
    driver = connection.connection.driver_connection
    if not isinstance(driver, sqlite3.Connection):
        raise TypeError(f"not a SQLite connection: {type(driver).__name__}")
    return driver


def append_sqlite(
    driver: sqlite3.Connection, wires: Sequence[Wire], *, mark: tuple[str, int] | None = None
) -> tuple[int, str]:
    """:func:`append` straight to the SQLite driver, skipping SQLAlchemy: the hot path.

    ``mark``: (journal, bytes) to record, in the same transaction, how far into that journal
    the rows reach (see :mod:`algora.audit.journal`).
    """
    if driver.in_transaction:  # left open by a failure: start clean
        driver.rollback()
    try:
        # IMMEDIATE takes the write lock before the head is read: no other writer can
        # append between the read and the insert.
        driver.execute("BEGIN IMMEDIATE")
        found = driver.execute(_SELECT_HEAD).fetchone()
        last_id, prev = (found[0], found[1]) if found is not None else (0, GENESIS_HASH)
        rows, last_id, prev = _chain_rows(wires, last_id, prev, sqlite=True)
        driver.executemany(_INSERT_SQLITE, rows)
        if mark is not None:
            driver.execute(_SET_MARK, mark)
        driver.commit()
    except BaseException:
        if driver.in_transaction:
            driver.rollback()
        raise
    return last_id, prev


def head(connection: Connection) -> tuple[int, str]:
    """The chain's (last id, last hash); (0, GENESIS_HASH) when it is empty."""
    found = connection.execute(
        select(AuditEventRow.id, AuditEventRow.hash).order_by(AuditEventRow.id.desc()).limit(1)
    ).first()
    return (found[0], found[1]) if found is not None else (0, GENESIS_HASH)


def _chain_rows(
    wires: Sequence[Wire], last_id: int, prev: str, *, sqlite: bool
) -> tuple[list[tuple[Any, ...]], int, str]:
    """The batch's rows with their ids and chain hashes, and the new (last id, last hash)."""
    rows: list[tuple[Any, ...]] = []
    for wire in wires:
        last_id += 1
        received, completed = canonical_time(wire[0]), canonical_time(wire[1])
        digest = _hash_values(prev, [last_id, received, completed, *wire[2:]])
        if sqlite:  # SQLAlchemy keeps SQLite times as text: the ISO form with a space
            times: tuple[Any, Any] = (received.replace("T", " "), completed.replace("T", " "))
        else:
            times = (datetime.fromisoformat(received), datetime.fromisoformat(completed))
        rows.append((last_id, *times, *wire[2:], prev, digest))
        prev = digest
    return rows, last_id, prev
