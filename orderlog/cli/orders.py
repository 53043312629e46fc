"""`orderlog order show|history`: an order as it stands or stood, and its whole history."""

from __future__ import annotations

import json

import click

from orderlog.cli.common import cli, echo, moment_option, opened
from orderlog.cli.rendering import history_text, render_text
from orderlog.domain.moment import Moment
from orderlog.presentation import order_view, record_view


@cli.group()
def order() -> None:
    """Read an order: as it stands, as it stood, its whole history."""


@order.command("show")
@click.argument("order_id")
@click.option(
    "--as-of",
    callback=moment_option,
    metavar="TIME",
    help="event time: what had happened by then (occurred_at <= TIME)",
)
@click.option(
    "--known-at",
    callback=moment_option,
    metavar="TIME",
    help="record time: what orderlog knew then (recorded_at <= TIME)",
)
@click.option("--version", type=click.IntRange(min=1), help="as it stood after this version")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text")
def show(order_id: str, as_of: str | None, known_at: str | None, version: int | None, as_json: bool) -> None:
    """An order's status and figures, now or as it stood at a moment or version."""
    app = opened()
    view = order_view(app.read_order(order_id, Moment(as_of=as_of, known_at=known_at, version=version)), app.vault)
    echo(json.dumps(view, ensure_ascii=False, indent=2) if as_json else render_text(view))


@order.command("history")
@click.argument("order_id")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text (every stored field, with hashes)")
def history(order_id: str, as_json: bool) -> None:
    """Every record of an order in order: what, when (event and record time), from whom."""
    app = opened()
    records = app.order_history(order_id)
    shown = [record_view(record, app.vault) for record in records]
    currency = records[0].data["currency"]
    echo(json.dumps(shown, ensure_ascii=False, indent=2) if as_json else history_text(shown, currency))
