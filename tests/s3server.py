"""A real S3-compatible server for the connector tests: moto in server mode, as its own process
on a free loopback port (its state is its own, and it is stopped by its PID)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
import httpx
from botocore.config import Config

from algora.testing import free_port, stop_process

ACCESS_KEY = "connector-access-key"
SECRET_KEY = "connector-secret-never-shown"  # moto accepts any credentials


class S3Server:
    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"moto-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> S3Server:
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto exited early: {self.log_path.read_text()[-3000:]}")
            try:
                httpx.get(self.url + "/moto-api/", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto did not start in 60 s")

    def stop(self) -> None:
        stop_process(self.process)

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def client(self) -> Any:
        """boto3 straight to the server, to see what really landed."""
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(s3={"addressing_style": "path"}),
        )

    def connector(self, buckets: list[str], **access: list[str]) -> dict[str, Any]:
        """A connector's settings for this server (``readers=[...]``, ``writers=[...]``)."""
        return {
            "type": "s3",
            "endpoint_url": self.url,
            "region": "us-east-1",
            "access_key_id": ACCESS_KEY,
            "secret_access_key": SECRET_KEY,
            "addressing_style": "path",
            "buckets": buckets,
            **access,
        }
