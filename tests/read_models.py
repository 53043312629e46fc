"""Stores and views for the read-model tests: a store fed hand-made or simulated envelopes,
the projectors run over its log as `orderlog project` runs them, and every view table's
rows (with each projector's watermark) to compare one way of building the views with
another."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from orderlog.application import OrderLog
from orderlog.bootstrap import open_orderlog
from orderlog.config import Config
from orderlog.domain.instants import format_instant, parse_instant
from orderlog.domain.record import Record
from orderlog.intake.outcomes import ACCEPTED, LineResult
from orderlog.store.location import parse_store_url
from projections import PROJECTORS, generations
from projections.projector import Projector
from projections.runner import ProjectorReport
from projections.service import open_views, project
from projections.sources import LOG, Batch, LogSource, Start
from projections.viewstore import ViewStore
from tests.builders import line
from tests.conftest import POSTGRES_BASE

ALL = tuple(PROJECTORS.values())

Snapshot = dict[str, Any]


def instant(text: str) -> str:
    """An event time as the store keeps it (`2026-03-01T10:00Z` -> `2026-03-01T10:00:00.000Z`)."""
    return format_instant(parse_instant(text))


class Scene:
    """A SQLite store in `directory` and its views (a SQLite file beside it, or `views_url`)."""

    def __init__(self, directory: Path, views_url: str | None = None):
        directory.mkdir(parents=True, exist_ok=True)
        self.config = Config(
            store_url=f"sqlite:///{directory / 'orderlog.db'}",
            master_key_file=directory / "master.key",
            views_url=views_url,
        )
        self.app: OrderLog = open_orderlog(self.config, create=True)
        self.views: ViewStore = open_views(self.config.views_location)

    def publish(self, *items: dict[str, Any] | str, accepted: bool = True) -> list[LineResult]:
        """Envelopes (or raw lines) into the store, as `orderlog publish` takes them; with
        `accepted`, every one must be accepted (a scenario the write side refuses is no scenario)."""
        texts = [item if isinstance(item, str) else line(item) for item in items]
        results = [result for batch in self.app.take(enumerate(texts, start=1)) for result in batch]
        if accepted:
            refused = [result for result in results if result.outcome != ACCEPTED]
            assert not refused, refused
        return results

    def project(
        self, kinds: Sequence[type[Projector]] = ALL, *, batch: int = 5_000, views: ViewStore | None = None
    ) -> list[ProjectorReport]:
        """`orderlog project --once` over the store's log, `batch` records per transaction."""
        return project(views or self.views, kinds, LogSource(self.app.log_reader, batch=batch), follow=False)

    def records(self) -> list[tuple[int, Record]]:
        return list(self.app.log_reader.records())

    def open_views(self, name: str) -> ViewStore:
        """Another view database beside the store (a fresh one, unless `name` was opened before)."""
        assert self.config.location.path is not None
        return open_views(parse_store_url(str(self.config.location.path.with_name(name))))

    def close(self) -> None:
        self.views.close()
        self.app.close()


class ListSource:
    """A source yielding the given (position, record) pairs from the log, in batches: the
    same records a LogSource yields, chosen by the test (e.g. only those up to a moment)."""

    name = "a list of records"
    shows_own_records = False  # the list is fixed when the test makes it

    def __init__(self, records: Sequence[tuple[int, Record]], *, batch: int = 5_000):
        self._records = list(records)
        self._batch = batch

    def batches(self, start: Start, *, follow: bool, should_stop: Callable[[], bool]) -> Iterator[Batch]:
        while not should_stop():
            after = start(LOG)
            chosen = [(LOG, position, record) for position, record in self._records if position > after]
            chosen = chosen[: self._batch]
            if not chosen:
                return
            yield Batch(chosen, {LOG: chosen[-1][1]})

    def lag(self, start: Start) -> int:
        return sum(1 for position, _record in self._records if position > start(LOG))


def batch_of(records: Sequence[tuple[int, Record]]) -> Batch:
    """The batch a LogSource yields for these records."""
    return Batch([(LOG, position, record) for position, record in records], {LOG: records[-1][0]})


def snapshot(views: ViewStore, kinds: Sequence[type[Projector]] = ALL) -> Snapshot:
    """Every row readers see in `kinds`' tables, in key order, and each projector's watermark."""
    found: Snapshot = {}
    for kind in kinds:
        for table in kind.tables:
            found[table.name] = [
                tuple(row) for row in views.query(f"SELECT * FROM {table.name} ORDER BY {', '.join(table.key)}")
            ]
        live = generations.live_generation(views, kind)
        found[f"{kind.name} watermark"] = None if live is None else generations.watermark(views, kind, live)
    return found


def views_files(path: Path) -> list[Path]:
    """A SQLite view database and whatever SQLite keeps beside it (write-ahead log, shared memory)."""
    return sorted(path.parent.glob(f"{path.name}*"))


def fresh_postgres_database() -> Iterator[str]:
    """A PostgreSQL database of its own (not a schema: the views must not meet anyone else's)."""
    import psycopg

    base = parse_store_url(POSTGRES_BASE)
    name = f"views_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(host=base.host, port=base.port, user=base.user, dbname=base.dbname, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{base.user}@{base.host}:{base.port}/{name}"
    finally:
        with psycopg.connect(
            host=base.host, port=base.port, user=base.user, dbname=base.dbname, autocommit=True
        ) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
