"""Algorithmia's special collections: a model's own (``.algo``), and a call tree's (``.session``).

- ``data://.algo/<owner>/<model>/temp/...`` and ``.../perm/...``: the model's own collection.
  From inside the model, ``data://.algo/temp/...`` and ``data://.algo/perm/...`` name it
  without the model's name. The model's code reads and writes it whoever called it (see
  ``algora.auth.delegation``); from outside, those who may manage the model do, with a key that
  holds ``data:read`` / ``data:write``. Files in ``temp`` are removed about a day after they
  were written.
- ``data://.session/...``: scratch space shared by the models of one call tree (the original
  call and every call made from inside it), removed when the original call ends. Only model
  code serving a call of the tree reaches it; from outside it does not exist.

Neither has an ACL: reading it answers none, and setting one is refused. Files are written
atomically as in every collection; the folders on the way to a file are created as needed.
Where the files live is :mod:`algora.store.model_data`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.delegation import algo_resource, session_resource
from algora.auth.policy import can, require_scope
from algora.auth.principals import Caller
from algora.db.tables import Model, Principal
from algora.errors import BadRequest, NotFound, PermissionDenied
from algora.store.collections import CollectionStore, check_collection, check_segment
from algora.store.model_data import (
    ALGO_FOLDERS,
    SESSION_COLLECTION,
    algo_store,
    session_store,
    sweep_temp,
)
from algora.store.spaces import Acl, Opened, Page, Upload, WriteAction

__all__ = ["ModelSpace", "Place", "SpaceKind"]

SpaceKind = Literal["algo", "session"]


@dataclass(frozen=True)
class Place:
    """Where a special path lies: a folder or file of the space's store."""

    kind: SpaceKind
    owner: str
    """The model's owner, or the session."""
    collection: str
    """The model's name, or :data:`~algora.store.model_data.SESSION_COLLECTION`."""
    parts: tuple[str, ...]
    delegated: bool = False
    """Model code reaching its own collection: no registry look-up needed."""

    @property
    def url(self) -> str:
        if self.kind == "session":
            return "/".join(["data://.session", *self.parts])
        return "/".join([f"data://.algo/{self.owner}/{self.collection}", *self.parts])

    @property
    def audit_url(self) -> str:
        return self.url

    @property
    def is_root(self) -> bool:
        """The collection itself (and, for a model's, its ``temp`` and ``perm`` folders)."""
        if self.kind == "algo":
            return not self.parts or (len(self.parts) == 1 and self.parts[0] in ALGO_FOLDERS)
        return not self.parts

    @property
    def resource(self) -> str:
        """What a ``data:read`` / ``data:write`` pattern is matched against."""
        if self.kind == "session":
            return session_resource(self.owner)
        return algo_resource(f"{self.owner}/{self.collection}")


@dataclass(frozen=True, eq=False)
class ModelSpace:
    """One of the two special spaces (``space``); each method opens its own session."""

    space: SpaceKind
    sessions: sessionmaker[Session]
    data_dir: Path
    max_file_bytes: int

    def _store(self) -> CollectionStore:
        if self.space == "algo":
            return algo_store(self.data_dir, self.max_file_bytes)
        return session_store(self.data_dir, self.max_file_bytes)

    def locate(self, caller: Caller, path: str) -> Place:
        """The place ``path`` (what follows ``.algo`` or ``.session``) names."""
        segments = self._segments(path)
        delegation = caller.delegation
        if self.space == "session":
            if delegation is None or delegation.session is None:
                raise PermissionDenied(
                    "data://.session is the scratch space of one call tree: only model code "
                    "serving a call can use it"
                )
            return Place("session", delegation.session, SESSION_COLLECTION, tuple(segments))
        if segments and segments[0] in ALGO_FOLDERS:
            if delegation is None:
                raise BadRequest(
                    "data://.algo/temp/... and data://.algo/perm/... name the calling model's "
                    "own collection, so only model code may use them; from outside, name the "
                    "model: data://.algo/<owner>/<model>/temp/..."
                )
            owner, name = delegation.model.split("/")
            parts = tuple(segments)
        elif len(segments) >= 2:
            owner, name = segments[0], check_collection(segments[1])
            parts = tuple(segments[2:])
        else:
            raise BadRequest("name a model's collection: data://.algo/<owner>/<model>/temp/...")
        model = f"{owner}/{name}"
        if parts and parts[0] not in ALGO_FOLDERS:
            raise NotFound(
                f"a model's collection holds only temp/ and perm/: see data://.algo/{model}"
            )
        mine = delegation is not None and delegation.model == model
        return Place("algo", owner, name, parts, delegated=mine)

    def _segments(self, rest: str) -> list[str]:
        if rest and not rest.startswith("/"):
            raise NotFound(f"no such collection: name data://.{self.space}/...")
        text = rest[1:]
        if text.endswith("/"):
            text = text[:-1]
        return [check_segment(s) for s in text.split("/")] if text else []

    def _authorize(self, caller: Caller, place: Place, need: str) -> None:
        """The key's scope, then (from outside the model) manage rights on the model; a model
        the caller may not manage has no collection it can see."""
        require_scope(caller, "data:write" if need == "write" else "data:read", place.resource)
        if place.kind == "session" or place.delegated:
            return
        with self.sessions() as session:
            row = session.scalars(
                select(Model)
                .join(Principal, Model.owner_id == Principal.id)
                .where(Principal.name == place.owner, Model.name == place.collection)
            ).first()
            if row is None or not can(caller, "manage", row):
                raise NotFound(f"no collection 'data://.algo/{place.owner}/{place.collection}'")

    # reads ------------------------------------------------------------------------------------
    def get(
        self, caller: Caller, where: Place, *, acl: bool, marker: str | None, limit: int
    ) -> Page | Opened | Acl:
        self._authorize(caller, where, "read")
        if acl:
            return Acl(None)
        store = self._store()
        found = self._kind_of(store, where)
        if found == "directory":
            return Page.of(store.list(where.owner, where.collection, where.parts, marker, limit))
        if found is None:
            raise NotFound(f"no file or folder '{where.url}'")
        return store.open(where.owner, where.collection, where.parts)

    def kind(self, caller: Caller, where: Place) -> str:
        self._authorize(caller, where, "read")
        found = self._kind_of(self._store(), where)
        if found is None:
            raise NotFound(f"no file or folder '{where.url}'")
        return found

    def _kind_of(self, store: CollectionStore, place: Place) -> str | None:
        if place.is_root:
            if place.kind == "algo":
                for folder in ALGO_FOLDERS:  # "guaranteed to exist for every algorithm"
                    store.ensure_folder(place.owner, place.collection, (folder,))
            else:
                store.ensure_collection(place.owner, place.collection)
        return store.kind(place.owner, place.collection, place.parts)

    # writes -----------------------------------------------------------------------------------
    def writable(self, caller: Caller, where: Place, action: WriteAction) -> Place:
        self._authorize(caller, where, "write")
        if action == "acl":
            raise BadRequest(
                f"data://.{where.kind} has no ACL: only its own rules decide who reads it"
            )
        if action in ("put", "delete"):
            inside = len(where.parts) >= (2 if where.kind == "algo" else 1)
            if not inside:
                folders = "temp/ or perm/ of data://.algo/..."
                space = folders if where.kind == "algo" else "data://.session"
                what = "write" if action == "put" else "delete"
                raise BadRequest(f"{what} a file or folder inside {space}")
        return where

    def start_upload(self, target: Place) -> Upload:
        store = self._store()
        store.ensure_folder(target.owner, target.collection, target.parts[:-1])
        return store.start_upload(target.owner, target.collection, target.parts)

    def uploaded(self, target: Place) -> None:
        if target.kind == "algo" and target.parts[0] == ALGO_FOLDERS[0]:
            sweep_temp(self._store())

    def child(self, parent: Place, name: str, body: dict[str, Any]) -> Place:
        parts = (*parent.parts, check_segment(name))
        return Place(parent.kind, parent.owner, parent.collection, parts, parent.delegated)

    def create(self, caller: Caller, target: Place) -> None:
        if target.kind == "algo" and target.parts[0] not in ALGO_FOLDERS:
            raise BadRequest("a model's collection holds only temp/ and perm/")
        store = self._store()
        store.ensure_folder(target.owner, target.collection, target.parts[:-1])
        if target.is_root:
            store.ensure_folder(target.owner, target.collection, target.parts)
        else:
            store.mkdir(target.owner, target.collection, target.parts)

    def set_acl(self, caller: Caller, target: Place, body: Any) -> tuple[str, ...]:
        raise BadRequest(
            f"data://.{target.kind} has no ACL: only its own rules decide who reads it"
        )

    def delete(self, target: Place, *, force: bool) -> int:
        return self._store().delete(target.owner, target.collection, target.parts, force=force)
