"""The blob store the settings name: the local one in the data directory, or an S3 bucket."""

from __future__ import annotations

import importlib.util

from algora.errors import AlgoraError, NotFound
from algora.settings import DataConnector, Settings, store_location
from algora.store.base import BlobStore
from algora.store.connectors import S3Connector
from algora.store.local import LocalBlobStore
from algora.store.s3 import S3BlobStore

__all__ = ["check_store", "open_store"]


def open_store(settings: Settings) -> BlobStore:
    """``ALGORA_STORE_URL``'s store (no I/O yet); raises AlgoraError saying what to set or
    install when an ``s3://`` store cannot be made."""
    if settings.store_url is None:
        return LocalBlobStore(settings.resolved_data_dir / "blobs")
    bucket, prefix = store_location(settings.store_url)
    endpoint = settings.store_s3
    if endpoint is None:
        raise AlgoraError(
            f"ALGORA_STORE_URL is {settings.store_url}: set ALGORA_STORE_S3 to its endpoint and "
            'credentials, e.g. {"endpoint_url": "https://s3.example.com", "access_key_id": '
            '"...", "secret_access_key": "..."} (see docs/scale-out.md)'
        )
    if not _installed("boto3"):
        raise AlgoraError(
            f"ALGORA_STORE_URL is {settings.store_url}, and an S3 store needs boto3, which this "
            "server lacks: pip install 'algora[s3]'"
        )
    connector = DataConnector(**dict(endpoint), buckets=[bucket])
    return S3BlobStore(S3Connector("store", connector, settings.max_archive_bytes), bucket, prefix)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # None in sys.modules: its import is blocked
        return False


def check_store(store: BlobStore, settings: Settings) -> None:
    """At start-up: write and remove a probe, or raise AlgoraError saying what is wrong."""
    where = settings.store_url or str(settings.resolved_data_dir / "blobs")
    try:
        store.ping()
    except NotFound as error:  # the bucket
        raise AlgoraError(
            f"the store {where} cannot be used: {error.message}; create it, or correct "
            "ALGORA_STORE_URL"
        ) from None
    except AlgoraError as error:
        raise AlgoraError(f"the store {where} cannot be used: {error.message}") from None
    except OSError as error:
        raise AlgoraError(f"the store {where} cannot be written: {error}") from None
