"""``algora admin``: recovery on the server itself, with access to its data directory."""

from __future__ import annotations

import asyncio
import getpass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.markup import escape

from algora.cli.common import console, err_console, server_side
from algora.errors import AlgoraError
from algora.settings import Settings

__all__ = ["admin_app", "reset_key"]

admin_app = typer.Typer(
    help="Recover the server's administration (run on the server, with its data directory).",
    no_args_is_help=True,
)


@admin_app.command("reset-key")
def reset_key(
    data_dir: Annotated[
        Path,
        typer.Option("--data-dir", help="The server's data directory (registry and admin.key)."),
    ],
    user: Annotated[
        str | None,
        typer.Option("--user", help="The admin to issue the key for (default: the first admin)."),
    ] = None,
) -> None:
    """Issue a new key for an admin, offline: for when every admin key is lost or revoked.

    Needs read and write access to the data directory (and the database it names, when
    ALGORA_DATABASE_URL is set). The key is written to DATA_DIR/admin.key (mode 0600) and
    printed once; other keys keep working; the audit log records the reset.
    """
    if not data_dir.is_dir():
        err_console.print(
            f"[bold red]error[/]: no data directory at {escape(str(data_dir))}: give the "
            "--data-dir that 'algora serve' uses"
        )
        raise typer.Exit(1)
    settings = Settings(data_dir=data_dir)
    if not settings.database_url and not (settings.resolved_data_dir / "registry.db").is_file():
        _no_registry(data_dir)
    # Imported here, as `algora serve` does: the client install lacks the server side.
    with server_side("algora admin reset-key"):
        from sqlalchemy.exc import SQLAlchemyError

        from algora.audit.log import AuditEvent, AuditLog
        from algora.auth.keyring import reset_admin_key
        from algora.db.engine import create_registry_engine, make_session_factory

    engine = create_registry_engine(settings.resolved_database_url)
    try:
        sessions = make_session_factory(engine)
        started = datetime.now(UTC)
        try:
            recovered = reset_admin_key(sessions, settings.resolved_data_dir, user)
        except SQLAlchemyError:
            _no_registry(data_dir)
        except AlgoraError as exc:
            err_console.print(f"[bold red]error[/] ({exc.code}): {escape(exc.message)}")
            raise typer.Exit(1) from None
        event = AuditEvent(
            action="admin.reset_key",
            received_at=started,
            completed_at=datetime.now(UTC),
            status=200,
            decision="allow",
            principal=recovered.principal,
            principal_id=recovered.principal_id,
            key_id=recovered.key_id,
            peer=_local_user(),
            resource=f"key/{recovered.key_id}",
        )
        log = AuditLog(sessions, enabled=settings.audit_enabled)
        try:
            log.record_sync(event)
        except AlgoraError:
            err_console.print("[yellow]warning[/]: the reset could not be written to the audit log")
        finally:
            asyncio.run(log.aclose())
    finally:
        engine.dispose()
    console.print(
        f"new key {recovered.key_id} for admin '{escape(recovered.principal)}', "
        f"written to {escape(str(recovered.path))} (shown once):"
    )
    typer.echo(recovered.secret)


def _no_registry(data_dir: Path) -> NoReturn:
    err_console.print(
        f"[bold red]error[/]: no Algora registry in {escape(str(data_dir))} (or its database "
        "cannot be opened): start 'algora serve' there once, or set ALGORA_DATABASE_URL as "
        "the server has it"
    )
    raise typer.Exit(1)


def _local_user() -> str:
    """Who ran the command, as the audit row's peer: ``cli:<login name>``."""
    try:
        return f"cli:{getpass.getuser()}"[:64]
    except (OSError, KeyError):  # no login name in this environment
        return "cli"
