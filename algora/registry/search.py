"""The catalog's search: full text over models' names, descriptions, tags, READMEs and schema
field names, with filters and two orders, showing only what the caller may read.

What a model's row does not hold (its README, inside the archive of its newest ready version,
its schemas' field names and its runtime) is kept in ``model_search``, rebuilt for a model when
that version changes: the search brings it up to date before it answers, so no publish path
needs to know about it. Versions are read without their JSON, logs or locks, and the in-memory
index rewrites only the models whose row or document changed. Then the text is matched:

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
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.principals import Caller
from algora.db.shared_state import CallStats, ModelSearchDocument
from algora.db.tables import Version, utcnow
from algora.registry.search_rows import VersionRow, model_rows, versions
from algora.registry.service import Registry
from algora.registry.views import ModelView
from algora.store.base import BlobStore

__all__ = ["Found", "ModelSearch", "SearchHit", "SearchQuery", "Sort", "runtime_of", "words_of"]

Sort = Literal["relevance", "recent", "calls"]
_Fingerprint = tuple[str, str, str, tuple[str, ...], str]
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
class Found:
    hits: list[SearchHit]
    owners: list[str]
    runtimes: list[str]


@dataclass(frozen=True)
class _Entry:
    model: ModelView
    newest: VersionRow | None
    ready: VersionRow | None
    runtime: str
    signature: str
    """Of its document in ``model_search``, as :meth:`ModelSearch._entries` left it."""
    updated_at: datetime
    """When the model or its newest version was created."""


def words_of(query: str) -> list[str]:
    """The words of a query, lower-cased: nothing of its syntax reaches the database."""
    return [w.lower() for w in _WORD.findall(query)][:_MAX_WORDS]


def runtime_of(manifest: dict[str, Any]) -> str:
    """What serves a version: a saved model's format, else its runtime (``python``)."""
    saved = manifest.get("saved")
    if isinstance(saved, dict) and saved.get("format"):
        return str(saved["format"])
    model = manifest.get("model")
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
        self._indexed: dict[int, _Fingerprint] = {}
        """Model id -> the fingerprint of what the in-memory index holds for it."""

    def search(self, caller: Caller, query: SearchQuery) -> Found:
        """The models the query finds among those the caller may read, in its order; and the
        owners and runtimes of all those the caller may read (the filters' choices)."""
        with self._sessions() as session:
            models = [row.view for row in model_rows(session, caller)]
        readable = self._entries(models)
        owners = sorted({e.model.owner for e in readable})
        runtimes = sorted({e.runtime for e in readable} - {""})
        entries = [e for e in readable if _kept(e, query)]
        words = words_of(query.text)
        entries.sort(key=lambda e: e.updated_at, reverse=True)
        if words:
            ranks = self._rank(entries, words)
            entries = [e for e in entries if e.model.id in ranks]
            if query.sort == "relevance":
                entries.sort(key=lambda e: ranks[e.model.id])
        if query.sort == "calls":  # most called in the last week first; stable: then recent
            volume = self._call_volume([e.model.id for e in entries])
            entries.sort(key=lambda e: volume.get(e.model.id, 0), reverse=True)
        hits = [_hit(e) for e in entries[: max(1, query.limit)]]
        return Found(hits, owners, runtimes)

    def _call_volume(self, model_ids: list[int]) -> dict[int, int]:
        """Calls per model over the last week, from the per-minute statistics."""
        if not model_ids:
            return {}
        since = utcnow() - timedelta(days=7)
        with self._sessions() as session:
            rows = session.execute(
                select(CallStats.model_id, func.sum(CallStats.calls))
                .where(CallStats.model_id.in_(model_ids), CallStats.minute >= since)
                .group_by(CallStats.model_id)
            )
            return {model_id: int(calls or 0) for model_id, calls in rows}

    # the models and their documents ---------------------------------------------------------
    def _entries(self, models: Sequence[ModelView]) -> list[_Entry]:
        if not models:
            return []
        ids = [m.id for m in models]
        newest: dict[int, VersionRow] = {}
        ready: dict[int, VersionRow] = {}
        with self._sessions() as session:
            for model_id, version in versions(session, ids):
                newest[model_id] = version  # ascending: the last one seen is the highest
                if version.status == "ready":
                    ready[model_id] = version
            shown = {i: ready.get(i) or newest.get(i) for i in ids}
            signatures = {i: _signature(version) for i, version in shown.items()}
            runtimes = self._refresh_documents(session, shown, signatures)
        entries = []
        for m in models:
            last = newest.get(m.id)
            updated = m.created_at if last is None else max(m.created_at, last.created_at)
            entries.append(
                _Entry(m, last, ready.get(m.id), runtimes[m.id], signatures[m.id], updated)
            )
        return entries

    def _refresh_documents(
        self,
        session: Session,
        shown: dict[int, VersionRow | None],
        signatures: dict[int, str],
    ) -> dict[int, str]:
        """Bring the documents of these models (each described by its shown version, whose
        signature ``signatures`` holds) up to date; the runtime of each."""
        stored = {
            model_id: (signature, runtime)
            for model_id, signature, runtime in session.connection().execute(
                select(
                    ModelSearchDocument.model_id,
                    ModelSearchDocument.signature,
                    ModelSearchDocument.runtime,
                ).where(ModelSearchDocument.model_id.in_(list(shown)))
            )
        }
        runtimes = {model_id: found[1] for model_id, found in stored.items()}
        stale = {
            model_id: version
            for model_id, version in shown.items()
            if stored.get(model_id, ("", ""))[0] != signatures[model_id]
        }
        if not stale:
            return runtimes
        wanted = [v.id for v in stale.values() if v is not None]
        full = {v.id: v for v in session.scalars(select(Version).where(Version.id.in_(wanted)))}
        for model_id, version in stale.items():
            row = full.get(version.id) if version is not None else None
            runtimes[model_id] = runtime_of(row.manifest) if row is not None else ""
            session.merge(
                ModelSearchDocument(
                    model_id=model_id,
                    signature=signatures[model_id],
                    version_id=row.id if row is not None else None,
                    readme=self._readme(row.archive_hash) if row is not None else "",
                    fields=" ".join(_field_names(row)) if row is not None else "",
                    runtime=runtimes[model_id],
                )
            )
        session.commit()
        return runtimes

    def readme(self, caller: Caller, owner: str, name: str) -> str:
        """The README of the model's newest ready version ("" when it has none)."""
        model = self._registry.get_model(caller, owner, name)  # 404 unless the caller may read it
        with self._sessions() as session:
            self._entries([row.view for row in model_rows(session, caller, [model.id])])
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
        match = " ".join(f'"{w}"*' for w in words)
        with self._lock:
            fingerprints = {e.model.id: _fingerprint(e.model, e.signature) for e in entries}
            stale = [
                e for e in entries if self._indexed.get(e.model.id) != fingerprints[e.model.id]
            ]
            if stale:
                self._index_models(session, stale, fingerprints)
            wanted = {e.model.id for e in entries}
            rows = (
                self._index()
                .execute(
                    "SELECT rowid FROM docs WHERE docs MATCH ? "
                    "ORDER BY bm25(docs, 10.0, 10.0, 4.0, 6.0, 1.0, 2.0)",
                    (match,),
                )
                .fetchall()
            )
        return [int(r[0]) for r in rows if int(r[0]) in wanted]

    def _index_models(
        self, session: Session, entries: list[_Entry], fingerprints: dict[int, _Fingerprint]
    ) -> None:
        """(Re)write these models' rows of the in-memory index; under the lock."""
        documents = {
            row.model_id: row
            for row in session.scalars(
                select(ModelSearchDocument).where(
                    ModelSearchDocument.model_id.in_([e.model.id for e in entries])
                )
            )
        }
        memory = self._index()
        for entry in entries:
            model, document = entry.model, documents.get(entry.model.id)
            memory.execute("DELETE FROM docs WHERE rowid = ?", (model.id,))
            memory.execute(_INSERT, (
                model.id, model.owner, model.name, model.description,
                " ".join(str(t) for t in model.tags),
                document.readme if document else "", document.fields if document else "",
            ))  # fmt: skip
            self._indexed[model.id] = fingerprints[model.id]

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


def _fingerprint(model: ModelView, signature: str) -> _Fingerprint:
    """What the in-memory index holds of a model: its row's words and its document's
    signature (compared as they are: cheaper than hashing them)."""
    return (model.owner, model.name, model.description, model.tags, signature)


def _kept(entry: _Entry, query: SearchQuery) -> bool:
    model = entry.model
    status = entry.newest.status if entry.newest else "empty"
    runtime = entry.runtime
    return (
        (not query.owner or model.owner == query.owner)
        and (not query.visibility or model.visibility == query.visibility)
        and (not query.status or status == query.status)
        and (not query.runtime or runtime == query.runtime)
    )


def _hit(entry: _Entry) -> SearchHit:
    return SearchHit(
        model=entry.model,
        status=entry.newest.status if entry.newest else "empty",
        latest=entry.ready.semver if entry.ready else None,
        runtime=entry.runtime,
        updated_at=entry.updated_at,
    )


def _signature(version: VersionRow | None) -> str:
    """Which version a document describes, as it was: rebuilt when this changes."""
    described = f"{version.id}:{version.status}" if version is not None else ""
    return hashlib.sha256(f"{_FORMAT}:{described}".encode()).hexdigest()


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
