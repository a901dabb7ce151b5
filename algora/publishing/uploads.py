"""Publishing an uploaded archive: the native API's ``POST .../versions``.

The caller's right to publish is checked before a byte of the archive is accepted; the archive
is staged in a private file under ``DATA_DIR/staging`` (at most ``max_archive_bytes``) and then
handed to :meth:`algora.publishing.publish.Publisher.accept`, which validates it, reserves the
version and starts its build.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from algora.auth.principals import Caller
from algora.errors import BadRequest, PayloadTooLarge
from algora.publishing.publish import Publisher
from algora.registry.service import Registry
from algora.registry.specs import Bump
from algora.registry.views import VersionView, version_view
from algora.settings import Settings

__all__ = ["GitInfo", "Upload", "Uploads"]


@dataclass(frozen=True)
class GitInfo:
    """Where the published folder came from, as the publisher's git said (lineage)."""

    commit: str | None = None
    dirty: bool | None = None
    branch: str | None = None


class Upload:
    """One archive arriving in chunks, for ``owner/name``; discard it once published."""

    def __init__(
        self, path: Path, limit: int, owner: str, name: str, bump: Bump | None, exact: str | None
    ) -> None:
        self.path = path
        self.owner, self.name = owner, name
        self.bump, self.exact = bump, exact
        self.size = 0
        self._limit = limit
        self._file = path.open("wb")

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._limit:
            raise PayloadTooLarge(f"the archive is larger than the {self._limit}-byte limit")
        self._file.write(chunk)

    def close(self) -> None:
        self._file.close()

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


class Uploads:
    """Accepts archives for publishing; every method checks the caller."""

    def __init__(self, settings: Settings, registry: Registry, publisher: Publisher) -> None:
        self._limit = settings.max_archive_bytes
        self._staging = settings.resolved_data_dir / "staging"
        self._registry = registry
        self._publisher = publisher

    def begin(
        self,
        caller: Caller,
        owner: str,
        name: str,
        *,
        bump: Bump | None = None,
        exact: str | None = None,
    ) -> Upload:
        """A staging file for the archive, once the caller may publish ``owner/name``."""
        if bump is not None and exact is not None:
            raise BadRequest("give either bump or version, not both")
        self._registry.check_publish(caller, owner, name)
        fd, tmp_name = tempfile.mkstemp(dir=self._staging, prefix="upload-")
        os.close(fd)
        return Upload(Path(tmp_name), self._limit, owner, name, bump, exact)

    def publish(self, caller: Caller, upload: Upload, git: GitInfo | None = None) -> VersionView:
        """Validate the staged archive and start building it as a new version (``building``)."""
        upload.close()
        if upload.size == 0:
            raise BadRequest("the request body is empty: send the model folder as tar.gz or zip")
        lineage: dict[str, Any] = {}
        if git is not None and git.commit:
            lineage["git"] = {"commit": git.commit, "dirty": bool(git.dirty), "branch": git.branch}
        version_id, _future = self._publisher.accept(
            caller,
            upload.owner,
            upload.name,
            upload.path,
            bump=upload.bump,
            exact=upload.exact,
            lineage=lineage,
        )
        row = self._registry.version_by_id(version_id)
        return version_view(f"{row.model.owner.name}/{row.model.name}", row)
