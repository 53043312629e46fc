"""`orderlog project|replay|holds|analytics|order status|views`: the read models (see README: Views).

The views are folded by projectors (projections/) from the store's log, or from
`orderlog.events` when Kafka is configured; these commands run them and read them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click

from orderlog.cli.common import (
    OUTPUT_FILE,
    cli,
    current_config,
    echo,
    interruptible,
    moment_option,
    opened,
    progress_bar,
)
from orderlog.cli.orders import order
from orderlog.cli.rendering import render_text, table_text
from orderlog.cli.viewing import as_json_text, output_formats, require_view, views_opened
from orderlog.cli.views_plot import plot_groups
from orderlog.domain.money import format_money
from orderlog.presentation import as_csv_text
from orderlog.store.location import StoreError, parse_store_url
from projections import PROJECTORS, UnknownProjector, chosen, holds
from projections import cancellations as cancellation_view
from projections import status as status_view
from projections.exceptions import Exceptions
from projections.service import group_of, project, replay, source_for, until_location
from projections.sources import LogSource
from projections.viewstore import QUERY_SECONDS, ViewStore

LAG_EVERY_SECONDS = 10.0


def source_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--source",
        type=click.Choice(["log", "kafka"]),
        help="where records come from: the store's log, or orderlog.events (default: kafka when Kafka is configured)",
    )(command)


def _names(names: tuple[str, ...]) -> list[Any]:
    try:
        return chosen(names)
    except UnknownProjector as error:
        raise click.BadParameter(str(error), param_hint="NAMES") from None


def _source(kinds: list[Any], source: str | None, purpose: str) -> Any:
    config = current_config()
    kafka = (source or ("kafka" if config.kafka else "log")) == "kafka"
    if kafka and not config.kafka:
        raise click.UsageError("--source kafka needs Kafka: --kafka HOST:PORT or ORDERLOG_KAFKA")
    if kafka:
        from orderlog.cli.kafka import kafka_config

        kafka_config()
    return source_for(config, opened(), kinds, kafka=kafka, group=group_of(kinds, purpose))


@cli.command("project")
@click.argument("names", nargs=-1)
@click.option(
    "--follow/--once", default=False, show_default=True, help="--follow: keep the views up to date as records arrive"
)
@source_option
def project_command(names: tuple[str, ...], follow: bool, source: str | None) -> None:
    """Run projectors (all when none are named: holds, cancellations, status, exceptions), and report each one's lag.

    With --follow, every 10 s it says on stderr, per projector, what this run has folded, its
    watermark and its lag, idle or not; Ctrl-C or SIGTERM stops it after the batch under way.
    """
    kinds = _names(names)
    records = _source(kinds, source, "project")
    with views_opened() as views, interruptible("the batch under way is committed") as interrupted:
        engine = opened(writing=True) if Exceptions in kinds else None  # records the queue's payment timeouts
        reports = project(
            views,
            kinds,
            records,
            follow=follow,
            should_stop=interrupted,
            engine=engine,
            lags=lambda lags: echo("\n".join(str(report) for report in lags), err=True),
            lag_every=LAG_EVERY_SECONDS if follow else float("inf"),
        )
    for report in reports:
        echo(str(report))


@cli.command("replay")
@click.argument("names", nargs=-1)
@click.option("--until", callback=moment_option, metavar="TIME", help="build the views as they stood then (event time)")
@click.option("--into", metavar="URL", help="build into this database (SQLite file or postgresql://...)")
@source_option
def replay_command(names: tuple[str, ...], until: str | None, into: str | None, source: str | None) -> None:
    """Rebuild views from the start of the log into fresh tables; readers switch over at once
    when they have caught up (never a half-built view). --until: as they stood at a past moment."""
    kinds = _names(names)
    config = current_config()
    location = until_location(config, until, into) if until else (parse_store_url(into) if into else None)
    records = _source(kinds, source, f"replay.{int(time.time())}")
    total = opened().log_reader.count_after(0) if isinstance(records, LogSource) else 0
    with (
        views_opened(location) as views,
        interruptible("the batch under way is committed") as interrupted,
        progress_bar(total, unit="records", description="replay") as advance,
    ):
        result = replay(views, kinds, records, until=until, should_stop=interrupted, progress=advance)
    echo(str(result))


@cli.command("holds")
@click.option("--sku", help="one SKU (and the orders holding it)")
@click.option("--order", "order_id", metavar="ID", help="one order's holds (and its SKUs)")
@output_formats
def holds_command(sku: str | None, order_id: str | None, as_json: bool, as_csv: bool) -> None:
    """Inventory per SKU (oversold first): held by open orders, on hand, available."""
    with views_opened(reading=True) as views:
        require_view(views, "holds_by_sku", "holds")
        found = holds.report(views, sku=sku, order_id=order_id)
    if as_json:
        echo(as_json_text(found))
    elif as_csv:
        echo(as_csv_text(found["orders"] if order_id else found["skus"]), nl=False)
    else:
        parts = [table_text(found["skus"]) if found["skus"] else "no SKU has a hold or a count yet"]
        if found["orders"]:
            parts.append(table_text(found["orders"]))
        echo("\n\n".join(parts))


@cli.group()
def analytics() -> None:
    """Figures over a window of event time."""


@analytics.command("cancellations")
@click.option("--by", type=click.Choice(cancellation_view.DIMENSIONS), default="reason", show_default=True)
@click.option("--since", callback=moment_option, metavar="TIME", help="from this moment (event time, inclusive)")
@click.option("--until", callback=moment_option, metavar="TIME", help="to this moment (event time, exclusive)")
@click.option(
    "--plot",
    "plot_file",
    type=OUTPUT_FILE,
    metavar="FILE.png",
    help="a bar chart of the groups",
)
@output_formats
def cancellations_command(
    *, by: str, since: str | None, until: str | None, plot_file: str | None, as_json: bool, as_csv: bool
) -> None:
    """Submitted, cancelled and the rate; cancellations by reason, category, channel, SKU, day
    or stage; time to cancel; value; refund cycle (p50, p90); repeat cancellers."""
    with views_opened(reading=True) as views:
        require_view(views, "cancellation_orders", "cancellations")
        try:
            found = cancellation_view.report(views, by=by, since=since, until=until)
        except cancellation_view.EmptyWindow as error:
            raise click.BadParameter(str(error), param_hint="'--since' / '--until'") from None
    if plot_file:
        plot_groups(found, plot_file)
    if as_json:
        echo(as_json_text(found))
    elif as_csv:
        echo(as_csv_text(found["groups"]), nl=False)
    else:
        echo(_cancellations_text(found))
    if plot_file:
        echo(f"chart written to {plot_file}", err=True)


def _cancellations_text(found: dict[str, Any]) -> str:
    headline = {key: value for key, value in found.items() if key not in ("groups", "repeat_cancellers", "by")}
    headline["cancelled_value"] = {
        currency: format_money(total, currency) for currency, total in found["cancelled_value"].items()
    }
    headline["repeat_cancellers"] = len(found["repeat_cancellers"])
    groups = table_text(found["groups"]) if found["groups"] else "no cancellations in this window"
    return f"{render_text(headline)}\n\nby {found['by']}:\n{groups}"


@order.command("status")
@click.argument("order_id")
@output_formats
def status_command(order_id: str, as_json: bool, as_csv: bool) -> None:
    """For customer service: status, financial status, lines, timeline of every change, holds."""
    with views_opened(reading=True) as views:
        require_view(views, "order_status", "status")
        found = status_view.report(views, order_id)
    if found is None:
        raise StoreError(
            f"order {order_id} is not in the status view (not submitted, or `orderlog project` has not run since)"
        )
    if as_json:
        echo(as_json_text(found))
    elif as_csv:
        echo(as_csv_text(found["timeline"]), nl=False)
    else:
        echo(render_text(found))


@cli.group("views")
def views_group() -> None:
    """The views themselves: their tables, and SQL over them."""


@views_group.command("sql")
@click.argument("query", required=False)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.001, max=86_400),
    default=QUERY_SECONDS,
    show_default=True,
    metavar="SECONDS",
    help="stop the query after this long",
)
@output_formats
def sql_command(query: str | None, timeout: float, as_json: bool, as_csv: bool) -> None:
    """Without QUERY: the tables, what each holds, and how to connect read-only. With QUERY:
    its rows (read-only: nothing can be changed through it; Ctrl-C stops it)."""
    with views_opened(reading=True) as views:
        if query is None:
            echo(_catalogue(views))
            return
        rows = views.read_only(query, seconds=timeout)
    if as_json:
        echo(as_json_text(rows))
    elif as_csv:
        echo(as_csv_text(rows), nl=False)
    else:
        echo(table_text(rows) if rows else "(no rows)")


def _catalogue(views: ViewStore) -> str:
    lines = [f"connect read-only: {views.read_only_url()}", ""]
    for kind in PROJECTORS.values():
        for table in kind.tables:
            shown = "" if views.has(table.name) else "  (not built yet: orderlog project)"
            lines.append(f"{table.name:<24} {table.doc}{shown}")
            lines.append(f"{'':<24} columns: {', '.join(table.names)}")
    return "\n".join(lines)
