"""A real Ray cluster on this machine: a head and a second node, each `ray start --block` in
its own process (and its own temporary folder), stopped by its PID (SIGTERM stops what it
started). Small: one CPU each, a 100 MB object store, no dashboard."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from algora.testing import free_port, stop_process

RAY = Path(sys.executable).with_name("ray")


class RayCluster:
    """Two Ray nodes; ``env`` is what a process needs to join them as a driver."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        self.processes: list[subprocess.Popen[bytes]] = []

    def _start(self, name: str, *args: str) -> None:
        log = (self.root / f"{name}.log").open("ab")
        command = [
            str(RAY), "start", "--block", "--num-cpus=1", "--object-store-memory=100000000",
            "--disable-usage-stats", f"--node-manager-port={free_port()}",
            f"--object-manager-port={free_port()}", f"--metrics-export-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
            *args,
        ]  # fmt: skip
        env = {**os.environ, **self.env}
        self.processes.append(
            subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        )
        log.close()

    def start(self) -> RayCluster:
        self._start(
            "head", "--head", f"--port={self.port}", "--node-ip-address=127.0.0.1",
            f"--temp-dir={self.root / 'tmp'}", "--include-dashboard=false",
            f"--ray-client-server-port={free_port()}", f"--dashboard-port={free_port()}",
        )  # fmt: skip
        self._wait_for(1)
        self._start("node", f"--address={self.address}", "--node-ip-address=127.0.0.1")
        self._wait_for(2)
        return self

    def _wait_for(self, nodes: int, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a Ray node exited early: {self.logs()}")
            if self.alive_nodes() >= nodes:
                return
            time.sleep(1.0)
        raise RuntimeError(f"the Ray cluster has no {nodes} nodes after {timeout}s: {self.logs()}")

    def alive_nodes(self) -> int:
        """Live nodes, as the GCS counts them (`ray status` without the dashboard)."""
        status = subprocess.run(
            [str(RAY), "status", f"--address={self.address}"],
            capture_output=True,
            text=True,
            env={**os.environ, **self.env},
            timeout=60,
            check=False,
        )
        if status.returncode != 0:
            return 0
        active = status.stdout.split("Active:", 1)[-1].split("Pending:", 1)[0]
        return active.count("node_")

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-2000:] for p in self.root.glob("*.log"))

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop_process(process, grace=30)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    # Short: Ray's Unix sockets live in the temporary folder, and their paths are limited.
    root = Path(tempfile.mkdtemp(prefix="algora-ray-"))
    cluster = RayCluster(root)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
