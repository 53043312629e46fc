"""The read side's use cases, as the CLI (and the console after it) calls them."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from eventsourcing.persistence import PersistenceError

from orderlog.domain.stream import NotRecorded
from orderlog.store.location import StoreError, StoreLocation, parse_store_url
from orderlog.store.opening import STORE_TABLE, VIEWS_TABLE, check_not_side_file, creation_lock, sqlite_tables
from projections import generations
from projections.projector import Projector
from projections.runner import ProjectorReport, Runner, Source
from projections.sources import KafkaSource, LogSource
from projections.viewstore import ViewStore

if TYPE_CHECKING:
    from orderlog.application import OrderLog
    from orderlog.config import Config
    from orderlog.domain.envelope import Upstream

LOG = logging.getLogger("orderlog.projections")


def open_views(location: StoreLocation) -> ViewStore:
    """The view database at `location`, created if missing; StoreError saying why not."""
    if location.kind == "sqlite" and location.path is not None and location.path.is_dir():
        raise StoreError(f"cannot open views {location.label}: it is a directory; name a file (e.g. orderlog.views.db)")
    if location.kind == "sqlite" and location.path is not None and not location.path.absolute().parent.is_dir():
        raise StoreError(
            f"cannot open views {location.label}: directory {location.path.absolute().parent} does not exist"
        )
    check_not_side_file(location, "views")
    if location.kind == "sqlite" and location.path is not None:
        tables = sqlite_tables(location, f"views {location.label}") or {VIEWS_TABLE}
        if STORE_TABLE in tables:
            raise StoreError(f"views {location.label} is the store: name a database of its own for the views")
        if VIEWS_TABLE not in tables:
            raise StoreError(f"views {location.label} holds another database, not orderlog's views")
    try:
        with creation_lock(location, shared=False):  # PostgreSQL: creates the schema too
            return ViewStore(location)
    except (PersistenceError, sqlite3.Error, OSError) as error:
        raise StoreError(f"cannot open views {location.label}: {' '.join(str(error).split())}") from None


def source_for(config: Config, app: OrderLog, kinds: Sequence[type[Projector]], *, kafka: bool, group: str) -> Source:
    """`orderlog.events` through a consumer group named `group`, or the store's log."""
    if not kafka:
        return LogSource(app.log_reader)
    from orderlog.kafka.registry import schema_ids

    whole_topic = not all(kind.partition_local for kind in kinds)
    return KafkaSource(
        config, schema_ids(config.schema_registry, config.topic("events")), group, whole_topic=whole_topic
    )


def group_of(kinds: Sequence[type[Projector]], purpose: str = "project") -> str:
    """One consumer group per set of projectors run together: `project.holds+status`."""
    return f"{purpose}.{'+'.join(kind.name for kind in kinds)}"


def project(
    views: ViewStore,
    kinds: Sequence[type[Projector]],
    source: Source,
    *,
    follow: bool,
    should_stop: Callable[[], bool] = lambda: False,
    engine: OrderLog | None = None,
    lags: Callable[[list[ProjectorReport]], None] = lambda _reports: None,
    lag_every: float = 10.0,
) -> list[ProjectorReport]:
    """Brings the live views up to date with the source (and keeps them so, following).
    With `engine` (a writer), the queue's payment-timeout cancellations are recorded in it.
    `lags` hears each projector's report (folded so far in this run, watermark, lag) at
    most every `lag_every` seconds, after a batch: a follower's heartbeat."""
    commands = None if engine is None else (lambda upstreams: record_decisions(engine, upstreams))
    runner = Runner(views, kinds, commands=commands)
    reported = time.monotonic()

    def report_lag(_read: int) -> None:
        nonlocal reported
        if time.monotonic() - reported >= lag_every:
            reported = time.monotonic()
            lags(runner.reports(source))

    return runner.run(source, follow=follow, should_stop=should_stop, progress=report_lag)


def catch_up(views: ViewStore, engine: OrderLog, kinds: Sequence[type[Projector]]) -> None:
    """Embedded mode: folds what the log holds now into `kinds`, so that whoever just acted
    (acknowledged an exception, ticked the clock) sees it on their next read."""
    project(views, kinds, LogSource(engine.log_reader), follow=False, engine=engine)


def record_decisions(engine: OrderLog, upstreams: list[Upstream]) -> None:
    """The engine's own decisions (cancellations for payment timeouts), each recorded once: a
    second one with the same event id is a duplicate the order refuses to count."""
    from orderlog.domain.order import Order

    for upstream in upstreams:
        try:
            engine.record_own(Order, upstream)
        except NotRecorded as refused:  # the order moved on (paid, cancelled) after the view decided
            LOG.info("%s %s not recorded: %s", upstream.type, upstream.key, refused)


@dataclass
class ReplayReport:
    projectors: list[ProjectorReport]
    switched: bool
    views: str

    def __str__(self) -> str:
        done = "now live" if self.switched else "NOT switched (stopped before catching up; the old views stay live)"
        return "\n".join([*(str(report) for report in self.projectors), f"rebuilt views in {self.views}: {done}"])


def replay(
    views: ViewStore,
    kinds: Sequence[type[Projector]],
    source: Source,
    *,
    until: str | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    progress: Callable[[int], None] = lambda _read: None,
) -> ReplayReport:
    """Rebuilds `kinds` from the start of the source into new tables, then makes them live in
    one transaction (blue/green); until then readers go on seeing the old ones."""
    for kind in kinds:
        for left in generations.abandoned(views, kind):
            generations.drop(views, kind, left)
    building = {kind.name: generations.new_generation(views, kind, until=until) for kind in kinds}
    runner = Runner(views, kinds, build=building)
    reports = runner.run(source, follow=False, should_stop=should_stop, progress=progress)
    if should_stop():
        return ReplayReport(reports, False, views.location.label)
    generations.switch(views, [(kind, building[kind.name]) for kind in kinds])
    return ReplayReport(reports, True, views.location.label)


def until_location(config: Config, until: str, into: str | None) -> StoreLocation:
    """Where views as of a past moment go: `--into`, or a file beside a SQLite store named for
    the moment (never the live views: analysts compare the two)."""
    if into:
        return parse_store_url(into)
    store = config.location
    if store.kind != "sqlite" or store.path is None:
        raise StoreError("replay --until on a PostgreSQL store needs --into URL: the live views must stay as they are")
    stamp = until.replace(":", "").replace("-", "").replace(".", "")
    return replace(store, url="", path=store.path.with_name(f"{store.path.stem}.views-until-{stamp}.db"))
