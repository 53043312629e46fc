"""`orderlog backup` and `orderlog schemas`: the store file and the Avro schema files."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from orderlog.avro import check_schemas, write_schemas
from orderlog.cli.common import OUTPUT_FILE, UserError, cli, echo, opened


@cli.command()
@click.option("--out", type=OUTPUT_FILE, required=True, metavar="FILE", help="the copy to write (must not exist)")
def backup(out: str) -> None:
    """Copy a live SQLite store, consistently, while others read and write it.

    The copy is one self-contained file. The master key is not copied: keep it apart from
    backups. For PostgreSQL use pg_dump (see README: the store).
    """
    app = opened()
    if Path(out).exists():
        raise UserError(f"{out} exists already; orderlog never overwrites a backup")
    copied = app.database.backup_to(Path(out))
    echo(f"copied {app.location.label} to {out}: {copied} events")


@cli.group()
def schemas() -> None:
    """The Avro schemas in schemas/, one file per event type and version."""


@schemas.command("check")
def schemas_check() -> None:
    """Exit 1 if a declaration changed without a new schema version."""
    problems = check_schemas()
    for problem in problems:
        echo(problem)
    if problems:
        sys.exit(1)
    echo("every schema in schemas/ matches its declaration")


@schemas.command("write")
def schemas_write() -> None:
    """Write the next version of each schema whose declaration changed (never rewrites one)."""
    written = write_schemas()
    for path in written:
        echo(f"wrote {path}")
    if not written:
        echo("nothing to write: every schema is current")
