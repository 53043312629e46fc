"""The projector runner: records in, view rows and positions out, one transaction per batch.

For every batch a source yields, each projector folds the records its tracked positions say
it has not folded yet (and, built `--until T`, only those that happened by T); then one
transaction writes every projector's changed rows, the batch's end positions under each
projector's tracking names, and each projector's watermark. A crash before the commit
leaves the views as they were and the positions with them, so the batch is read again; a
batch read again after the commit is skipped by its positions. Either way each record
changes each view exactly once.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from eventsourcing.persistence import Tracking

from projections import generations
from projections.projector import Projector
from projections.sources import Batch, Start
from projections.viewstore import PositionTaken, ViewStore

LOG = logging.getLogger("orderlog.projections")
GC_THRESHOLD = 50_000


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """A batch makes hundreds of thousands of short-lived objects and keeps many rows alive:
    collecting the youngest generation every 700 allocations (Python's default) spent about
    15% of a replay re-scanning them. Collections still run, less often; the rest is restored."""
    before = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


class Source(Protocol):
    name: str
    #: Whether records the engine makes at a projector's request show up here at once (the
    #: store's log) rather than later, through the relay (Kafka).
    shows_own_records: bool

    def batches(self, start: Start, *, follow: bool, should_stop: Callable[[], bool]) -> Any: ...

    def lag(self, start: Start) -> int: ...


class GenerationSwitched(Exception):
    """A replay made another generation live while this runner was writing the old one."""


@dataclass
class Lane:
    """One projector in a run: the generation it writes and the positions it has reached."""

    projector: Projector
    generation: int
    live: bool
    until: str | None
    positions: dict[str, int] = field(default_factory=dict)
    folded: int = 0

    @property
    def name(self) -> str:
        return self.projector.name

    def tracking_name(self, source_name: str) -> str:
        return f"{self.name}/g{self.generation}/{source_name}"


@dataclass
class ProjectorReport:
    name: str
    generation: int
    folded: int
    watermark: str
    lag: int | None

    def __str__(self) -> str:
        lag = "" if self.lag is None else f", lag {self.lag:,}"
        return f"{self.name}: {self.folded:,} record(s) folded, watermark {self.watermark or '-'}{lag}"


class Runner:
    def __init__(
        self,
        views: ViewStore,
        projectors: Sequence[type[Projector]],
        *,
        build: dict[str, int] | None = None,
        commands: Callable[[list[Any]], None] | None = None,
    ):
        """Runs `projectors` on their live generations, or on the generations named in `build`
        (a replay's, not yet live). `commands` records what projectors ask the engine to record
        (the queue's payment timeouts); without it (a replay) nothing is asked."""
        self._views = views
        self._commands = commands
        self.lanes = [self._lane(kind, (build or {}).get(kind.name)) for kind in projectors]

    def run(
        self,
        source: Source,
        *,
        follow: bool,
        should_stop: Callable[[], bool] = lambda: False,
        progress: Callable[[int], None] = lambda _read: None,
    ) -> list[ProjectorReport]:
        """Until the source is drained (or, following, until `should_stop`); `progress` hears
        after every batch (an empty one when drained and following) how many records have
        been read."""
        read = 0
        with _fewer_collections():
            while True:
                for batch in source.batches(self.start, follow=follow, should_stop=should_stop):
                    if batch.records:
                        self.apply(batch)
                        read += len(batch.records)
                    else:  # drained: what was decided while catching up can be asked for now
                        self._hand_over(caught_up=True)
                    progress(read)  # after every batch, empty ones too: a follower's heartbeat
                # Records asked for at the very end are on the log but not yet folded: a run
                # that stops once drained reads them too, so it never ends behind its own work.
                asked = self._hand_over(caught_up=True)
                if not (asked and source.shows_own_records) or follow or should_stop():
                    break
        return self.reports(source)

    def start(self, source_name: str) -> int:
        """Where a source is to be read from: the least position any projector has reached."""
        return min(self._position(lane, source_name) for lane in self.lanes)

    def apply(self, batch: Batch) -> None:
        if batch.reassigned:  # rows and positions from the database, as another process left them
            self._reload()
        for lane in self.lanes:
            self._fold(lane, batch)
            lane.projector.prepare()
        try:
            self._commit(batch)
        except (PositionTaken, GenerationSwitched) as reason:  # another runner got there first
            LOG.debug("batch not applied: %s", reason)
            self._reload()
        except BaseException:
            self._reload()
            raise
        else:
            for lane in self.lanes:
                lane.projector.committed()
            self._hand_over(caught_up=batch.caught_up)

    def _hand_over(self, *, caught_up: bool) -> bool:
        """The records projectors ask the engine to make (a replay has nobody to ask); whether
        any were asked for."""
        if self._commands is None:
            return False
        asked = False
        for lane in self.lanes:
            commands = lane.projector.take_commands(caught_up=caught_up)
            if commands:
                self._commands(commands)
                asked = True
        return asked

    def reports(self, source: Source | None) -> list[ProjectorReport]:
        return [
            ProjectorReport(
                lane.name,
                lane.generation,
                lane.folded,
                lane.projector.watermark,
                None if source is None else source.lag(lambda name, lane=lane: self._position(lane, name)),
            )
            for lane in self.lanes
        ]

    def _fold(self, lane: Lane, batch: Batch) -> None:
        apply = lane.projector.apply
        until = lane.until
        folded = 0
        for source_name in batch.ends:
            self._position(lane, source_name)  # known before skipping by it
        positions = lane.positions
        for source_name, position, record in batch.records:
            if position <= positions[source_name] or (until is not None and record.occurred_at > until):
                continue
            apply(record)
            folded += 1
        lane.folded += folded

    def _commit(self, batch: Batch) -> None:
        with self._views.transaction() as cursor:
            for lane in self.lanes:
                if lane.live:
                    self._still_live(cursor, lane)
                for table, deleted, rows in lane.projector.changes():
                    cursor.executemany(table.delete(lane.generation), deleted)
                    cursor.executemany(table.upsert(lane.generation), rows)
                moved = [(name, end) for name, end in batch.ends.items() if end > lane.positions[name]]
                self._views.record_positions(
                    cursor,
                    [Tracking(lane.tracking_name(name), end) for name, end in moved],
                    [lane.positions[name] for name, _end in moved],
                )
                cursor.execute(
                    "UPDATE view_generations SET watermark = ? WHERE projector = ? AND generation = ?",
                    (lane.projector.watermark, lane.name, lane.generation),
                )
        for lane in self.lanes:
            lane.positions.update((name, end) for name, end in batch.ends.items() if end > lane.positions[name])

    def _still_live(self, cursor: Any, lane: Lane) -> None:
        cursor.execute(
            "SELECT live FROM view_generations WHERE projector = ? AND generation = ?", (lane.name, lane.generation)
        )
        rows = cursor.fetchall()
        if not rows or int(rows[0][0]) != 1:
            raise GenerationSwitched(f"{lane.name}: generation {lane.generation} is no longer live")

    def _reload(self) -> None:
        """After a failed commit: positions and rows from the database again, and a live
        runner moves to whichever generation is live now."""
        self.lanes = [self._lane(type(lane.projector), None if lane.live else lane.generation) for lane in self.lanes]

    def _lane(self, kind: type[Projector], generation: int | None) -> Lane:
        live = generation is None
        chosen = generations.ensure_live(self._views, kind) if generation is None else generation
        projector = kind(self._fetcher(chosen), empty=self._empty(kind, chosen))
        projector.scan = self._scanner(chosen)  # type: ignore[method-assign]
        projector.watermark = generations.watermark(self._views, kind, chosen)
        return Lane(projector, chosen, live, generations.until_of(self._views, kind, chosen))

    def _position(self, lane: Lane, source_name: str) -> int:
        found = lane.positions.get(source_name)
        if found is None:
            found = lane.positions[source_name] = self._views.position(lane.tracking_name(source_name)) or 0
        return found

    def _empty(self, kind: type[Projector], generation: int) -> bool:
        return all(
            not self._views.query(f"SELECT 1 FROM {table.physical(generation)} LIMIT 1") for table in kind.tables
        )

    def _scanner(self, generation: int) -> Callable[[Any, str, tuple[Any, ...]], list[tuple[Any, ...]]]:
        def scan(table: Any, where: str, parameters: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            return self._views.query(
                f"SELECT {', '.join(table.names)} FROM {table.physical(generation)} WHERE {where}", parameters
            )

        return scan

    def _fetcher(self, generation: int) -> Callable[[Any, Any], list[tuple[Any, ...]]]:
        def fetch(table: Any, ident: Any) -> list[tuple[Any, ...]]:
            return self._views.query(table.select(generation, table.key[:1]), (ident,))

        return fetch
