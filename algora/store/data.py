"""The hosted-data spaces of one platform, built once from its settings."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from algora.settings import Settings
from algora.store.collection_space import CollectionSpace, CollectionTarget, DataPath
from algora.store.collections import sweep_interrupted_uploads
from algora.store.connector_space import ConnectorSpace
from algora.store.connectors import Connectors
from algora.store.model_space import ModelSpace, Place
from algora.store.spaces import DataSpace

__all__ = ["DataSpaces"]


class DataSpaces:
    """Collections, models' own spaces, call trees' scratch spaces and S3 connectors."""

    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], connectors: Connectors
    ) -> None:
        data, cap = settings.resolved_data_dir, settings.max_data_file_bytes
        self.collections: DataSpace[DataPath, CollectionTarget] = CollectionSpace(
            sessions, data / "collections", cap
        )
        self.algo: DataSpace[Place, Place] = ModelSpace("algo", sessions, data, cap)
        self.session: DataSpace[Place, Place] = ModelSpace("session", sessions, data, cap)
        self.connectors = ConnectorSpace(sessions, connectors, cap)
        """Also :meth:`ConnectorSpace.choose`: which connector serves a caller."""
        self._roots = (data / "collections", data / "algo-data", data / "sessions")

    def sweep_interrupted_uploads(self) -> int:
        """Remove what uploads cut off by a crash left behind (at start-up)."""
        return sum(sweep_interrupted_uploads(root) for root in self._roots if root.is_dir())
