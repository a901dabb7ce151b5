"""``algora data ls|cat|cp|mkdir|rm|acl``: hosted data over the ``/v1/data`` API.

URIs as Algorithmia writes them: ``data://owner/collection/path``, ``data://.my/...``,
``s3://bucket/key``; ``owner/collection/path`` works too where only hosted data makes sense
(everywhere but ``cp``, whose bare paths are local).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated

import httpx
import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from algora.cli.common import client_for, console, err_console, errors_to_exit, write_json
from algora.cli.data_copy import Bars, plan_copy
from algora.cli.options import JsonOption, Remote, with_remote
from algora.errors import AlgoraError, InvalidInput, NotFound
from algora.sdk.data import DataEntry, DataHandle, acl_name
from algora.sdk.data import Progress as OnBytes

__all__ = ["data_app"]

data_app = typer.Typer(
    help="Hosted data: list, read, copy, make, delete and share files and collections "
    "(data://owner/collection/path, data://.my/..., s3://bucket/key).",
    no_args_is_help=True,
)

UriArgument = Annotated[
    str, typer.Argument(help="data://owner/collection/path, data://.my/..., s3://bucket/key")
]
_LARGE = 1024 * 1024
"""Files from this size up get their own progress bar."""


class AclName(StrEnum):
    """The names of :data:`algora.sdk.data.ACLS`."""

    private = "private"
    my_models = "my-models"
    public = "public"


@contextmanager
def _errors() -> Iterator[None]:
    """Algora, connection and local file errors as one clear line; exit 1."""
    with errors_to_exit():
        try:
            yield
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            err_console.print(f"[bold red]error[/]: {escape(exc.strerror or str(exc))}{where}")
            raise typer.Exit(1) from None


def _size(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover - the loop returns


# ls -----------------------------------------------------------------------------------------
def _entries(handle: DataHandle) -> list[DataEntry]:
    """A folder's entries; for a file, its own entry (found in its folder's listing)."""
    kind = handle.kind()
    if kind is None:
        raise NotFound(f"nothing at {handle.uri} (or you may not read it)")
    if kind == "directory":
        return list(handle.list())
    parent = handle.parent
    assert parent is not None  # a file is inside something
    for entry in parent.list():
        if entry.name == handle.name:
            return [entry]
    raise NotFound(f"nothing at {handle.uri}")


@data_app.command("ls")
@with_remote
def ls(
    remote: Remote,
    uri: Annotated[
        str, typer.Argument(help="A collection, folder or file (default: your collections).")
    ] = "data://.my",
    as_json: JsonOption = False,
) -> None:
    """List a folder, a collection, an owner's collections or a bucket (every page)."""
    with _errors():
        entries = _entries(client_for(remote).data(uri))
    entries.sort(key=lambda e: (not e.is_dir, e.name))
    if as_json:
        write_json([e.as_dict() for e in entries])
        return
    with_acl = any(e.acl is not None for e in entries)
    table = Table("name", "size", "last modified", *(["acl"] if with_acl else []))
    for entry in entries:
        name = escape(entry.name) + ("/" if entry.is_dir else "")
        row = [name, _size(entry.size), (entry.last_modified or "")[:19].replace("T", " ")]
        if with_acl:
            row.append(acl_name(entry.acl) if entry.acl is not None else "")
        table.add_row(*row)
    console.print(table)


# cat ----------------------------------------------------------------------------------------
@data_app.command("cat")
@with_remote
def cat(
    remote: Remote,
    uri: UriArgument,
) -> None:
    """Write a file's bytes to standard output, streamed."""
    out = sys.stdout.buffer
    with _errors():
        try:
            with client_for(remote).data(uri).open() as reader:
                for chunk in reader:
                    out.write(chunk)
            out.flush()
        except BrokenPipeError:  # `algora data cat ... | head`: the reader has all it wants
            sys.stderr.close()
            raise typer.Exit(0) from None


# cp -----------------------------------------------------------------------------------------
def _bars(progress: Progress, overall: TaskID | None) -> Bars:
    """One bar per large file, and one for the whole copy when there are several files."""

    @contextmanager
    def bar(label: str, size: int | None) -> Iterator[OnBytes]:
        task = progress.add_task(label, total=size) if (size or 0) >= _LARGE else None

        def advance(count: int) -> None:
            if task is not None:
                progress.advance(task, count)
            if overall is not None:
                progress.advance(overall, count)

        try:
            yield advance
        finally:
            if task is not None:
                progress.remove_task(task)

    return bar


@data_app.command("cp")
@with_remote
def cp(
    remote: Remote,
    source: Annotated[
        str, typer.Argument(metavar="SRC", help="What to copy: a local path or a data URI.")
    ],
    target: Annotated[
        str,
        typer.Argument(
            metavar="DST",
            help="Where: a local path or a data URI (into it when it is a folder or ends in /).",
        ),
    ],
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Copy a folder and all it holds.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Replace files that exist at the destination.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress, no summary.")] = False,
) -> None:
    """Copy files and folders to, from or between hosted data.

    Local paths are written without a scheme, data URIs with one (data://, s3://); a copy
    between two data URIs goes through this machine. Into a folder when DST is one or ends
    in '/'. Otherwise a file is written at DST (its folder must exist), and a folder (-r) is
    created at DST with the remote folders on the way.

    Nothing is replaced without --force: when any file would be, nothing is copied. Every file
    ends up whole or not at all (the server writes atomically; downloads are renamed into
    place), and names from a listing that could leave the destination folder are refused.
    """
    with _errors():
        copy = plan_copy(client_for(remote), source, target, recursive=recursive, force=force)
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        )
        show = not quiet and err_console.is_terminal
        with Progress(*columns, console=err_console, transient=True, disable=not show) as progress:
            overall: TaskID | None = None
            if len(copy.files) > 1:
                overall = progress.add_task(f"{len(copy.files)} files", total=copy.total_bytes)
            try:
                copy.run(_bars(progress, overall))
            except (AlgoraError, OSError, httpx.HTTPError):
                if copy.copied:
                    err_console.print(
                        f"{copy.copied} of {len(copy.files)} files were copied before the error "
                        "(each whole); run the copy again with --force to finish it"
                    )
                raise
    if copy.skipped:
        err_console.print(
            f"skipped {len(copy.skipped)} link(s) or special file(s), e.g. "
            f"'{escape(copy.skipped[0])}'",
            highlight=False,
        )
    if not quiet:
        console.print(
            f"copied {copy.copied} file(s) ({_size(copy.copied_bytes)}) to "
            f"{escape(str(copy.target))}",
            highlight=False,
        )


# mkdir, rm, acl -----------------------------------------------------------------------------
@data_app.command("mkdir")
@with_remote
def mkdir(
    remote: Remote,
    uri: UriArgument,
    acl: Annotated[
        AclName | None,
        typer.Option(
            "--acl",
            help="A new collection's readers: private (you), my-models (also your models, the "
            "default), public (any user).",
        ),
    ] = None,
    parents: Annotated[
        bool,
        typer.Option("--parents", "-p", help="Make the folders on the way; no error if there."),
    ] = False,
) -> None:
    """Make a collection (data://owner/collection) or a folder in one."""
    with _errors():
        handle = client_for(remote).data(uri)
        made = handle.mkdir(
            acl=acl.value if acl is not None else None, parents=parents, exist_ok=parents
        )
    console.print(f"made {escape(made)}", highlight=False)


@data_app.command("rm")
@with_remote
def rm(
    remote: Remote,
    uri: UriArgument,
    recursive: Annotated[
        bool,
        typer.Option(
            "--recursive", "-r", "--force", "-f", help="Delete a folder and everything in it."
        ),
    ] = False,
) -> None:
    """Delete a file, a folder or a whole collection (one that holds anything only with -r)."""
    with _errors():
        handle = client_for(remote).data(uri)
        if not handle.uri.parts or (handle.uri.scheme == "data" and len(handle.uri.parts) < 2):
            raise InvalidInput(
                f"{handle.uri} is not something to delete: name a collection, folder or file"
            )
        kind = handle.kind()
        if kind is None:
            raise NotFound(f"nothing at {handle.uri} (or you may not read it)")
        if kind == "directory" and not recursive and next(iter(handle.list()), None) is not None:
            raise InvalidInput(f"{handle.uri} is a folder that is not empty: delete it with -r")
        deleted = handle.delete(force=recursive)
    console.print(f"deleted {escape(str(handle.uri))} ({deleted} file(s))", highlight=False)


@data_app.command("acl")
@with_remote
def acl(
    remote: Remote,
    uri: Annotated[str, typer.Argument(help="A collection: data://owner/collection")],
    set_to: Annotated[
        AclName | None,
        typer.Option(
            "--set", help="private (you), my-models (also your models), public (any user)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show or set who may read a collection."""
    with _errors():
        handle = client_for(remote).data(uri)
        read = handle.set_acl(set_to.value) if set_to is not None else handle.acl()
    if as_json:
        body = {"uri": str(handle.uri), "acl": None if read is None else {"read": read}}
        write_json(body)
    elif read is None:
        console.print(f"{escape(str(handle.uri))} has no ACL of its own", highlight=False)
    else:
        entries = ", ".join(read) or "its owner only"
        console.print(f"{escape(str(handle.uri))}: {acl_name(read)} ({entries})", highlight=False)
