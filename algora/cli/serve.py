"""``algora serve``: the platform on one machine, optionally with the example models."""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from algora.cli.common import console, errors_to_exit, server_side
from algora.errors import AlgoraError, Unavailable
from algora.settings import Settings

if TYPE_CHECKING:
    import uvicorn

    from algora.multiproc.processes import Fronts
    from algora.platform import Platform

__all__ = ["serve"]

logger = logging.getLogger(__name__)


def _publish_examples(url: str, key: str, folder: Path, server: uvicorn.Server) -> None:
    """Publish every example folder whose model has no version yet (runs beside the server)."""
    import time

    from algora.modelfolder.layouts import find_manifest, has_manifest
    from algora.modelfolder.pipeline import PIPELINE_NAME
    from algora.sdk.client import Client

    while not server.started and not server.should_exit:
        time.sleep(0.1)
    # Pipelines last: each step must have a ready version when its pipeline is published.
    examples = sorted(
        (p for p in folder.iterdir() if has_manifest(p)),
        key=lambda p: ((p / PIPELINE_NAME).is_file(), p.name),
    )
    with Client(url, key) as client:
        existing = {m["name"] for m in client.models()}
        for example in examples:
            if server.should_exit:
                return
            name = find_manifest(example).manifest.model.name
            if name in existing:
                continue
            console.print(f"[cyan]publishing example[/] {example.name} ...")
            try:
                final = client.publish(example)
            except AlgoraError as exc:
                console.print(f"[bold red]example {example.name} failed[/]: {exc.message}")
                continue
            console.print(f"[green]ready[/] {final['model']}/{final['version']}")
    console.print("[bold green]examples ready[/]")


def _start_fronts(
    platform: Platform, settings: Settings, overrides: dict[str, object], processes: int
) -> tuple[list[socket.socket], Fronts]:
    """Listen on the port, then start the other processes and wait until each serves."""
    from algora.multiproc.processes import Fronts, listening_socket

    try:
        sock = listening_socket(settings.host, settings.port, first=True)
    except OSError as exc:
        raise Unavailable(
            f"cannot listen on {settings.host}:{settings.port} ({exc.strerror}): "
            "stop what uses the port, or choose another with --port"
        ) from None
    console.print(f"starting {processes - 1} more gateway process(es) on the same port ...")
    fronts = Fronts(platform, overrides, processes - 1)
    try:
        fronts.wait_ready()
    except BaseException:
        sock.close()
        raise
    return [sock], fronts


def serve(
    host: Annotated[str | None, typer.Option("--host", help="Listen address.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Listen port.")] = None,
    grpc_port: Annotated[
        int | None,
        typer.Option("--grpc-port", help="Also serve the Open Inference Protocol over gRPC here."),
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Registry, store and environments.")
    ] = None,
    examples: Annotated[
        Path | None, typer.Option("--examples", help="Publish the example models in this folder.")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=0,
            help="Gateway processes serving the port (0: one per core); see docs/operations.md.",
        ),
    ] = 1,
) -> None:
    """Start the gateway with the embedded registry (SQLite), local store and local workers."""
    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if grpc_port is not None:
        overrides["grpc_port"] = grpc_port
    if data_dir is not None:
        overrides["data_dir"] = str(data_dir)
    processes = workers or os.cpu_count() or 1
    settings = Settings(**overrides)  # type: ignore[arg-type]  # validated by pydantic
    if processes > 1 and settings.rate_limit_backend == "auto":
        overrides["rate_limit_backend"] = "database"  # a key's limit once, not once per process
        settings = Settings(**overrides)  # type: ignore[arg-type]
    # Imported here, not at the top: the client commands neither pay for the gateway's imports
    # nor need them installed (`pip install algora` is the client; the server is an extra).
    with server_side("algora serve"):
        import uvicorn

        from algora.app import configure_logging, create_app
        from algora.multiproc.processes import PrimaryServer, server_config
        from algora.platform import Platform

    configure_logging(settings.log_level, settings.log_format)

    with errors_to_exit():  # a setting that cannot work: one line that says what to do
        platform = Platform.open(settings)
    url = f"http://{settings.host}:{settings.port}"
    key_file = settings.resolved_data_dir / "admin.key"
    # A gateway that joins a registry another one created has no admin.key of its own.
    key = platform.new_admin_key or (
        key_file.read_text(encoding="utf-8").strip() if key_file.is_file() else None
    )
    console.print(
        f"[bold]Algora[/] serving at [cyan]{url}[/] (data in {settings.resolved_data_dir})"
    )
    if settings.grpc_port is not None:
        console.print(
            f"Open Inference Protocol over gRPC at [cyan]{settings.host}:{settings.grpc_port}[/]"
        )
    if platform.new_admin_key:
        console.print(f"admin API key (shown once, also in {key_file}): [bold yellow]{key}[/]")
    elif key is not None:
        console.print(f"admin API key: in {key_file}")
    else:
        console.print(
            "admin API key: this registry's admin was created by another gateway; its key is in "
            "that gateway's data folder (admin.key)"
        )
    if key is not None:
        console.print(
            "try: [cyan]curl -s -X POST -H 'Authorization: Simple "
            f"{key if platform.new_admin_key else '$(cat ' + str(key_file) + ')'}' "
            f"-H 'Content-Type: text/plain' -d 'world' {url}/v1/algo/admin/hello/latest[/]",
            soft_wrap=True,
        )
    config = server_config(create_app(settings, platform), settings)
    fronts: Fronts | None = None
    sockets: list[socket.socket] | None = None
    server = uvicorn.Server(config)
    if processes > 1:
        with errors_to_exit():
            sockets, fronts = _start_fronts(platform, settings, overrides, processes)
        server = PrimaryServer(config, fronts)
    if examples is not None and key is None:
        console.print("[yellow]--examples needs the admin key: the examples are not published[/]")
    elif examples is not None:
        folder = examples
        threading.Thread(
            target=_publish_examples, args=(url, key, folder, server), daemon=True
        ).start()
    try:
        server.run(sockets=sockets)
    finally:
        if fronts is not None:
            fronts.stop()
        platform.publisher.shutdown()
        platform.builds.shutdown()
        platform.engine.dispose()
