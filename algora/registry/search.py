"""The catalog's search: full text over models' names, descriptions, tags, READMEs and schema
field names, with filters and two orders, showing only what the caller may read.

What a model's row does not hold (its README, inside the archive of its newest ready version, and
its schemas' field names) is kept in ``model_search``, rebuilt for a model when its newest ready
version changes: the search brings it up to date before it answers, so no publish path needs to
know about it. Then the text is matched:

- on SQLite by FTS5, in an index in this process's memory that follows the registry's rows (it
  holds only words, and is rebuilt from the registry after a restart);
- on PostgreSQL by its own full-text search, in one query over the same rows.
"""

from __future__ import annotations

import hashlib
import io
import re
import sqlite3
import tarfile
import threading
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.principals import Caller
from algora.db.tables import Model, ModelSearchDocument, Version
from algora.registry.service import Registry
from algora.registry.views import ModelView, model_view
from algora.store.base import BlobStore

__all__ = ["ModelSearch", "SearchHit", "SearchQuery", "Sort", "runtime_of", "words_of"]

Sort = Literal["relevance", "recent"]
_FORMAT = "1"
"""Raised when what a document holds changes, so that every document is rebuilt once."""
_README_NAMES = ("readme.md", "readme.markdown", "readme.txt", "readme")
_README_LIMIT = 256 * 1024
_WORD = re.compile(r"\w+", re.UNICODE)
_MAX_WORDS = 16
_INSERT = (
    "INSERT INTO docs(rowid, owner, name, description, tags, readme, fields) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True)
class SearchQuery:
    """What to look for; an empty ``text`` matches every model, and None filters nothing."""

    text: str = ""
    owner: str | None = None
    runtime: str | None = None
    """``python``, ``node``, or a saved model's format (``onnx``, ``sklearn`` ...)."""
    status: str | None = None
    """The status of the model's newest version, or ``empty`` for a model with none."""
    visibility: str | None = None
    sort: Sort = "relevance"
    limit: int = 100


@dataclass(frozen=True)
class SearchHit:
    model: ModelView
    status: str
    """Its newest version's status (``building``, ``ready``, ``failed``), or ``empty``."""
    latest: str | None
    """Its newest ready version, MAJOR.MINOR.PATCH."""
    runtime: str
    updated_at: datetime
    """When it or its newest version was created."""


@dataclass(frozen=True)
class _Entry:
    model: Model
    newest: Version | None
    ready: Version | None

    @property
    def updated_at(self) -> datetime:
        return max(self.model.created_at, self.newest.created_at if self.newest else datetime.min)


def words_of(query: str) -> list[str]:
    """The words of a query, lower-cased: nothing of its syntax reaches the database."""
    return [w.lower() for w in _WORD.findall(query)][:_MAX_WORDS]


def runtime_of(version: Version | None) -> str:
    """What serves a version: a saved model's format, else its runtime (``python``)."""
    if version is None:
        return ""
    saved = version.manifest.get("saved")
    if isinstance(saved, dict) and saved.get("format"):
        return str(saved["format"])
    model = version.manifest.get("model")
    return str(model.get("runtime", "python")) if isinstance(model, dict) else "python"


class ModelSearch:
    """Searches the models a caller may read; thread-safe."""

    def __init__(
        self, sessions: sessionmaker[Session], registry: Registry, store: BlobStore
    ) -> None:
        self._sessions = sessions
        self._registry = registry
        self._store = store
        self._lock = threading.Lock()
        self._memory: sqlite3.Connection | None = None
        self._indexed: dict[int, str] = {}
        """Model id -> the fingerprint of what the in-memory index holds for it."""

    def search(self, caller: Caller, query: SearchQuery) -> list[SearchHit]:
        entries = self._entries(self._registry.list_models(caller))
        entries = [e for e in entries if _kept(e, query)]
        words = words_of(query.text)
        if words:
            ranks = self._rank(entries, words)
            entries = [e for e in entries if e.model.id in ranks]
            if query.sort == "relevance":
                entries.sort(key=lambda e: ranks[e.model.id])
            else:
                entries.sort(key=lambda e: e.updated_at, reverse=True)
        else:
            entries.sort(key=lambda e: e.updated_at, reverse=True)
        return [_hit(e) for e in entries[: max(1, query.limit)]]

    def owners_and_runtimes(self, caller: Caller) -> tuple[list[str], list[str]]:
        """The owners and runtimes of the models the caller may read: the filters' choices."""
        entries = self._entries(self._registry.list_models(caller))
        owners = sorted({e.model.owner.name for e in entries})
        runtimes = sorted({runtime_of(e.ready or e.newest) for e in entries} - {""})
        return owners, runtimes

    # the models and their documents ---------------------------------------------------------
    def _entries(self, models: Sequence[Model]) -> list[_Entry]:
        if not models:
            return []
        ids = [m.id for m in models]
        with self._sessions() as session:
            newest: dict[int, Version] = {}
            ready: dict[int, Version] = {}
            rows = session.scalars(
                select(Version)
                .where(Version.model_id.in_(ids))
                .order_by(Version.major, Version.minor, Version.patch)
            )
            for version in rows:  # ascending: the last one seen is the highest
                newest[version.model_id] = version
                if version.status == "ready":
                    ready[version.model_id] = version
            entries = [_Entry(m, newest.get(m.id), ready.get(m.id)) for m in models]
            self._refresh_documents(session, entries)
        return entries

    def _refresh_documents(self, session: Session, entries: list[_Entry]) -> None:
        ids = [e.model.id for e in entries]
        stored: dict[int, str] = {
            model_id: signature
            for model_id, signature in session.execute(
                select(ModelSearchDocument.model_id, ModelSearchDocument.signature).where(
                    ModelSearchDocument.model_id.in_(ids)
                )
            )
        }
        changed = False
        for entry in entries:
            signature = _signature(entry.ready)
            if stored.get(entry.model.id) == signature:
                continue
            version = entry.ready
            session.merge(
                ModelSearchDocument(
                    model_id=entry.model.id,
                    signature=signature,
                    version_id=version.id if version else None,
                    readme=self._readme(version.archive_hash) if version else "",
                    fields=" ".join(_field_names(version)) if version else "",
                )
            )
            changed = True
        if changed:
            session.commit()

    def readme(self, caller: Caller, owner: str, name: str) -> str:
        """The README of the model's newest ready version ("" when it has none)."""
        model = self._registry.get_model(caller, owner, name)
        self._entries([model])
        with self._sessions() as session:
            row = session.get(ModelSearchDocument, model.id)
            return row.readme if row else ""

    def _readme(self, archive_hash: str | None) -> str:
        if not archive_hash or not self._store.exists(archive_hash):
            return ""
        with self._store.open(archive_hash) as blob:
            return readme_in(blob.read())

    # ranking ---------------------------------------------------------------------------------
    def _rank(self, entries: list[_Entry], words: list[str]) -> dict[int, int]:
        """Model id -> its place (0 first) among the entries that match every word."""
        ids = [e.model.id for e in entries]
        if not ids:
            return {}
        with self._sessions() as session:
            if session.get_bind().dialect.name == "postgresql":
                found = _postgres_rank(session, ids, words)
            else:
                found = self._sqlite_rank(session, entries, words)
        return {model_id: place for place, model_id in enumerate(found)}

    def _sqlite_rank(self, session: Session, entries: list[_Entry], words: list[str]) -> list[int]:
        documents = {
            row.model_id: row
            for row in session.scalars(
                select(ModelSearchDocument).where(
                    ModelSearchDocument.model_id.in_([e.model.id for e in entries])
                )
            )
        }
        match = " ".join(f'"{w}"*' for w in words)
        with self._lock:
            memory = self._index()
            for entry in entries:
                document = documents.get(entry.model.id)
                columns = _columns(entry.model, document)
                fingerprint = hashlib.sha256("\x00".join(columns).encode()).hexdigest()
                if self._indexed.get(entry.model.id) == fingerprint:
                    continue
                memory.execute("DELETE FROM docs WHERE rowid = ?", (entry.model.id,))
                memory.execute(_INSERT, (entry.model.id, *columns))
                self._indexed[entry.model.id] = fingerprint
            wanted = {e.model.id for e in entries}
            rows = memory.execute(
                "SELECT rowid FROM docs WHERE docs MATCH ? "
                "ORDER BY bm25(docs, 10.0, 10.0, 4.0, 6.0, 1.0, 2.0)",
                (match,),
            ).fetchall()
        return [int(r[0]) for r in rows if int(r[0]) in wanted]

    def _index(self) -> sqlite3.Connection:
        if self._memory is None:
            memory = sqlite3.connect(":memory:", check_same_thread=False)
            memory.execute(
                "CREATE VIRTUAL TABLE docs USING fts5(owner, name, description, tags, readme, "
                "fields, tokenize = 'unicode61 remove_diacritics 2')"
            )
            self._memory = memory
        return self._memory


def _postgres_rank(session: Session, ids: list[int], words: list[str]) -> list[int]:
    document = (
        "setweight(to_tsvector('simple', p.name || ' ' || m.name), 'A') || "
        "setweight(to_tsvector('simple', m.description || ' ' || CAST(m.tags AS TEXT)), 'B') || "
        "setweight(to_tsvector('simple', coalesce(s.fields, '')), 'C') || "
        "setweight(to_tsvector('simple', coalesce(s.readme, '')), 'D')"
    )
    statement = text(
        f"SELECT m.id FROM models m JOIN principals p ON p.id = m.owner_id "  # noqa: S608  # fixed SQL; words are bound
        f"LEFT JOIN model_search s ON s.model_id = m.id, to_tsquery('simple', :query) q "
        f"WHERE m.id = ANY(:ids) AND ({document}) @@ q ORDER BY ts_rank({document}, q) DESC, m.id"
    )
    query = " & ".join(f"{w}:*" for w in words)
    return [int(r[0]) for r in session.execute(statement, {"query": query, "ids": ids})]


def _columns(model: Model, document: ModelSearchDocument | None) -> tuple[str, ...]:
    return (
        model.owner.name,
        model.name.replace("_", " ") + " " + model.name,
        model.description,
        " ".join(str(t) for t in model.tags),
        document.readme if document else "",
        document.fields if document else "",
    )


def _kept(entry: _Entry, query: SearchQuery) -> bool:
    model = entry.model
    status = entry.newest.status if entry.newest else "empty"
    runtime = runtime_of(entry.ready or entry.newest)
    return (
        (not query.owner or model.owner.name == query.owner)
        and (not query.visibility or model.visibility == query.visibility)
        and (not query.status or status == query.status)
        and (not query.runtime or runtime == query.runtime)
    )


def _hit(entry: _Entry) -> SearchHit:
    return SearchHit(
        model=model_view(entry.model),
        status=entry.newest.status if entry.newest else "empty",
        latest=entry.ready.semver if entry.ready else None,
        runtime=runtime_of(entry.ready or entry.newest),
        updated_at=entry.updated_at,
    )


def _signature(version: Version | None) -> str:
    return hashlib.sha256(f"{_FORMAT}:{version.id if version else ''}".encode()).hexdigest()


def _field_names(version: Version) -> Iterable[str]:
    for schema in (version.input_schema, version.output_schema):
        yield from _names_in(schema)


def _names_in(schema: Any, depth: int = 0) -> Iterable[str]:
    """Every property name in a JSON schema, nested ones too (a few levels deep)."""
    if not isinstance(schema, dict) or depth > 4:
        return
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for name, inner in properties.items():
            yield str(name)
            yield from _names_in(inner, depth + 1)
    for key in ("items", "additionalProperties"):
        yield from _names_in(schema.get(key), depth + 1)
    for inner in (schema.get("$defs") or {}).values():
        yield from _names_in(inner, depth + 1)


def readme_in(archive: bytes) -> str:
    """The README at the top of a model archive (tar, possibly compressed, or zip), or of its
    one top folder; "" when there is none. Reads at most 256 KiB of it."""
    try:
        if zipfile.is_zipfile(io.BytesIO(archive)):
            with zipfile.ZipFile(io.BytesIO(archive)) as zf:
                names = [i.filename for i in zf.infolist() if not i.is_dir()]
                chosen = _readme_name(names)
                if chosen is None:
                    return ""
                with zf.open(chosen) as member:
                    return member.read(_README_LIMIT).decode("utf-8", errors="replace")
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tf:
            files = {m.name: m for m in tf.getmembers() if m.isfile()}
            chosen = _readme_name(list(files))
            extracted = tf.extractfile(files[chosen]) if chosen else None
            if extracted is None:
                return ""
            return extracted.read(_README_LIMIT).decode("utf-8", errors="replace")
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError):
        return ""


def _readme_name(names: list[str]) -> str | None:
    for name in sorted(names, key=lambda n: n.count("/")):
        parts = name.removeprefix("./").split("/")
        if len(parts) <= 2 and parts[-1].lower() in _README_NAMES:
            return name
    return None
