"""`orderlog exceptions list|show|ack|resolve` and `orderlog tick`: the exception queue (see README).

The queue is a view (projections/exceptions.py); people's actions are events in the store.
After an action the queue is brought up to date from the log at once (embedded mode), so
the next `exceptions list` shows it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from orderlog.application import OrderLog
from orderlog.cli.common import cli, current_config, echo, moment_option, opened
from orderlog.cli.rendering import render_text, table_text
from orderlog.cli.viewing import as_json_text, output_formats, require_view, views_opened
from orderlog.domain.exceptions import CODES, Department
from orderlog.domain.instants import format_instant
from orderlog.presentation import as_csv_text
from orderlog.queue_actions import QueueActionError, act_on_exception, tick
from orderlog.store.location import StoreError
from projections import exceptions as queue_view
from projections.exceptions import STATUSES, Exceptions
from projections.service import catch_up

LIST_COLUMNS = (
    "exception_id",
    "code",
    "status",
    "department",
    "severity",
    "subject",
    "detected_at",
    "due_at",
    "overdue",
)


@cli.group("exceptions")
def exceptions_group() -> None:
    """The exception queue: what went wrong, who owns it, when it is due."""


@exceptions_group.command("list")
@click.option(
    "--status",
    type=click.Choice(list(STATUSES)),
    default="active",
    show_default=True,
    help="active: open or acknowledged",
)
@click.option("--code", type=click.Choice(list(CODES)), help="one code")
@click.option("--type", "kind", type=click.Choice(sorted({code.type for code in CODES.values()})), help="one type")
@click.option("--department", type=click.Choice([str(department) for department in Department]))
@click.option("--overdue", is_flag=True, help="only those past their due time (by the queue's clock)")
@output_formats
def list_command(
    *,
    status: str,
    code: str | None,
    kind: str | None,
    department: str | None,
    overdue: bool,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Exceptions, overdue first, then by due time (event time; the clock is the latest event folded)."""
    with views_opened(reading=True) as views:
        require_view(views, "exceptions", "exceptions")
        items = queue_view.queue(views, status=status, code=code, kind=kind, department=department, overdue=overdue)
        now = queue_view.clock(views)
    if as_json:
        echo(as_json_text(items))
    elif as_csv:
        echo(as_csv_text([{column: item[column] for column in LIST_COLUMNS} for item in items]), nl=False)
    elif not items:
        echo(f"no {status} exceptions (queue clock {now or '-'})")
    else:
        echo(table_text([{column: item[column] for column in LIST_COLUMNS} for item in items]))
        echo(f"{len(items):,} exception(s); queue clock {now}", err=True)


@exceptions_group.command("show")
@click.argument("exception_id")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text")
def show_command(exception_id: str, as_json: bool) -> None:
    """One exception: what it is about, what caused it, its SLA, who did what."""
    item = _find(exception_id)
    if as_json:
        echo(as_json_text(item))
        return
    echo(render_text({**item, "caused_by": ", ".join(item["caused_by"]), "rule": CODES[item["code"]].opens_when}))


@exceptions_group.command("ack")
@click.argument("exception_id")
@click.option("--by", required=True, help="who takes it on")
@click.option("--note", default="", help="what is being done")
def ack_command(exception_id: str, by: str, note: str) -> None:
    """Acknowledge an exception: recorded on its order's history, with who and when."""
    _act("ExceptionAcknowledged", exception_id, by, note)


@exceptions_group.command("resolve")
@click.argument("exception_id")
@click.option("--by", required=True, help="who resolved it")
@click.option("--note", required=True, help="how it was resolved")
def resolve_command(exception_id: str, by: str, note: str) -> None:
    """Resolve an exception that no event will clear: recorded on its order's history."""
    if not note.strip():
        raise click.BadParameter("say how it was resolved", param_hint="--note")
    _act("ExceptionResolved", exception_id, by, note)


@cli.command("tick")
@click.option("--now", callback=moment_option, metavar="TIME", help="the time to move the clock to (default: now)")
@click.option("--by", help="who or what ticked (a scheduler's name)")
def tick_command(now: str | None, by: str | None) -> None:
    """Record that time has passed when no event says so (a quiet night): deadlines fire, in a
    replay at the same point as live."""
    moment = now or format_instant(datetime.now(UTC))
    app = opened(writing=True)
    try:
        tick(app, moment, by)
    except QueueActionError as error:
        raise StoreError(str(error)) from None
    echo(f"clock ticked to {moment}")
    _catch_up(app)


def _find(exception_id: str) -> dict[str, Any]:
    with views_opened(reading=True) as views:
        require_view(views, "exceptions", "exceptions")
        item = queue_view.one(views, exception_id)
    if item is None:
        raise StoreError(f"no exception {exception_id!r} in the queue (see `orderlog exceptions list --status all`)")
    return item


def _act(action: str, exception_id: str, by: str, note: str) -> None:
    item = _find(exception_id)
    app = opened(writing=True)
    try:
        act_on_exception(app, action, item, by, note)
    except QueueActionError as error:
        raise StoreError(str(error)) from None
    verb = "acknowledged" if action == "ExceptionAcknowledged" else "resolved"
    echo(f"{exception_id} {verb} by {by.strip()} (recorded in order {item['order_id']}'s history)")
    _catch_up(app)


def _catch_up(app: OrderLog) -> None:
    """Embedded mode: fold the queue now, so that the next list shows the action."""
    if current_config().kafka:
        return
    with views_opened() as views:
        catch_up(views, app, [Exceptions])
