"""`orderlog sources add|list|revoke`: who may publish what, with which key."""

from __future__ import annotations

import json
from pathlib import Path

import click

from orderlog.cli.common import cli, echo, opened
from orderlog.cli.rendering import table_text
from orderlog.sources.registry import SourceRequest, read_manifest
from orderlog.sources.signing import read_public_key


@cli.group()
def sources() -> None:
    """Upstream sources: their public keys and the event types each may publish."""


@sources.command("add")
@click.argument("name", required=False)
@click.option("--types", help="comma-separated event types this source may publish")
@click.option("--public-key", type=click.Path(dir_okay=False), metavar="FILE")
@click.option(
    "--from",
    "manifest",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="register every source in a sources.json (as `simulate --sign-with DIR` writes)",
)
@click.option("--by", help="who registers it (recorded)")
def sources_add(
    name: str | None, types: str | None, public_key: str | None, manifest: str | None, by: str | None
) -> None:
    """Register a source, or every source of a manifest (`--from DIR/sources.json`).

    A new key for a registered source needs the old one revoked first.
    """
    if manifest is not None:
        if name or types or public_key:
            raise click.UsageError("give either --from FILE or NAME --types T --public-key FILE, not both")
        wanted = read_manifest(Path(manifest))
    elif name and types and public_key:
        listed = [t.strip() for t in types.split(",") if t.strip()]
        wanted = [SourceRequest(name, listed, read_public_key(Path(public_key)))]
    else:
        raise click.UsageError("name the source with --types and --public-key, or give --from FILE")
    app = opened(create=True)
    for request in wanted:
        key, new = app.register_source(request, by)
        said = "may publish" if new else "was already registered, with this key; it may publish"
        echo(f"source {request.name}: key {key.key_id} {said} {', '.join(key.types)}")


@sources.command("list")
@click.option("--json", "as_json", is_flag=True)
def sources_list(as_json: bool) -> None:
    """Every registered source, with each key's state, who registered or revoked it and when."""
    rows = [
        {
            "source": source.name,
            "key_id": key.key_id,
            "types": ",".join(key.types),
            "registered_at": key.registered_at,
            "registered_by": key.registered_by,
            "revoked_at": key.revoked_at,
            "revoked_by": key.revoked_by,
        }
        for source in opened().sources()
        for key in source.keys
    ]
    if as_json:
        echo(json.dumps(rows, indent=2))
    elif rows:
        echo(table_text(rows))
    else:
        echo("no sources registered")


@sources.command("revoke")
@click.argument("name")
@click.option("--reason", default="", help="why (recorded)")
@click.option("--by", help="who revokes it (recorded)")
def sources_revoke(name: str, reason: str, by: str | None) -> None:
    """Revoke a source's key: its events are rejected from now on; old signatures stay checkable."""
    key = opened(writing=True).revoke_source(name, reason, by)
    echo(f"source {name}: key {key.key_id} revoked")
