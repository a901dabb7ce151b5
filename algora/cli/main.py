"""The ``algora`` command."""

from __future__ import annotations

import typer

from algora import __version__
from algora.cli import (
    access,
    admin,
    alerts,
    aliases,
    audit,
    catalog,
    data,
    drift,
    publishing,
    quality,
    sampling,
    scaffold,
    serve,
    stats,
    usage,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="algora",
    help="Publish any model as an immutable, versioned, governed REST service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"algora {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    """Algora: publish models, call them, govern them."""


app.command()(serve.serve)
app.command()(scaffold.init)
app.command()(publishing.publish)
app.command()(catalog.call)
app.command()(catalog.versions)
app.command()(catalog.login)
app.command()(catalog.whoami)
app.command("stats")(stats.stats)
app.command("reports")(stats.reports)
app.command()(drift.drift)
app.command()(usage.usage)
app.command()(quality.feedback)
app.command()(sampling.samples)
aliases.alias_app.command()(quality.compare)
app.add_typer(access.models_app, name="models")
app.add_typer(catalog.keys_app, name="keys")
app.add_typer(access.users_app, name="users")
app.add_typer(access.orgs_app, name="orgs")
app.add_typer(audit.audit_app, name="audit")
app.add_typer(aliases.alias_app, name="alias")
app.add_typer(aliases.promote_app, name="promote")
app.add_typer(alerts.alert_app, name="alert")
app.add_typer(usage.quota_app, name="quota")
app.add_typer(data.data_app, name="data")
app.add_typer(admin.admin_app, name="admin")
app.add_typer(sampling.sampling_app, name="sampling")


def main() -> None:
    app()
