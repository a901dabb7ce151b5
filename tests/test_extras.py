"""Optional features name the extra to install when their packages are missing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from algora.environments.vulnscan import Auditor
from algora.errors import Unavailable
from algora.settings import DataConnector
from algora.store.connectors import S3Connector

LOCK = "six==1.17.0 \\\n    --hash=sha256:" + "0" * 64 + "\n"


def test_without_the_vulnscan_extra_the_scan_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pip_audit", None)  # None in sys.modules: not installed
    monkeypatch.setitem(sys.modules, "cyclonedx", None)
    auditor = Auditor(tmp_path)
    result = auditor.scan(LOCK, lambda _line: None)
    assert result.error == "pip-audit is not installed: pip install 'algora[vulnscan]'"
    assert auditor.sbom(LOCK, "e" * 64, "3.11.7") is None


def test_without_the_s3_extra_a_connector_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "botocore.exceptions", None)
    config = DataConnector(access_key_id="k", secret_access_key="s", buckets=["lake-bucket"])
    connector = S3Connector("lake", config, 1 << 20)
    with pytest.raises(Unavailable, match=r"needs boto3.*pip install 'algora\[s3\]'"):
        connector.call("lake-bucket", "head_bucket")
