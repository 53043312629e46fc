"""What every projector is: a fold of records into rows, kept in memory between commits.

A projector declares its tables (projections.viewstore.Table) and a handler per event type
(`on_OrderSubmitted(record)`), exactly as the aggregates do. Handlers read and change rows
in memory, grouped by entity (the first key column: an order id, a SKU); the runner writes
the changed entities once per batch, in the transaction that records the positions the
batch consumed. Between batches the rows stay in memory (up to CACHE_ENTITIES), so a
replay reads the view database only for entities it has not seen or has evicted.

A projector never looks at the wall clock: its clock is its watermark, the latest event
time (`occurred_at`) it has folded, so whatever depends on time happens at the same point
in a replay as it did live.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from orderlog.domain.contract import EVENT_TYPES
from orderlog.domain.record import Record
from projections.viewstore import Table

CACHE_ENTITIES = 25_000
"""Entities kept in memory per table between batches; past this the cache is emptied after
a commit, so memory stays bounded however long the log is (a replay of 1,000,000 events with
200,000 per table took 3.3 GB; what leaves the cache is read back from the view database)."""

PEOPLES_ACTIONS = frozenset(name for name, event_type in EVENT_TYPES.items() if event_type.wall_clock)
"""Records of what a person did, at the wall clock's time: they never move a projector's clock
(see EventType.wall_clock)."""

Rows = dict[tuple[Any, ...], list[Any]]
"""An entity's rows: key (the table's key columns) -> row (every column, in declared order)."""
Fetch = Callable[[Table, Any], list[tuple[Any, ...]]]


class Projector:
    name: ClassVar[str]
    tables: ClassVar[tuple[Table, ...]]
    partition_local: ClassVar[bool] = True
    """Every row belongs to one stream key's partition (an order's rows), so processes in one
    consumer group, each holding some partitions, never write the same row. A projector whose
    rows gather records from every partition (a SKU's holds) reads the whole topic in one
    process instead."""

    def __init__(self, fetch: Fetch, *, empty: bool):
        """`fetch(table, entity)` reads an entity's stored rows; `empty`: the tables hold nothing yet."""
        self.watermark = ""
        self._fetch = fetch
        self._handlers = {
            name.removeprefix("on_"): getattr(self, name) for name in dir(type(self)) if name.startswith("on_")
        }
        self._cache: dict[str, dict[Any, Rows]] = {table.name: {} for table in self.tables}
        self._dirty: dict[str, set[Any]] = {table.name: set() for table in self.tables}
        self._deleted: dict[str, list[tuple[Any, ...]]] = {table.name: [] for table in self.tables}
        self._complete = dict.fromkeys(self._cache, empty)
        self._written: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]] = {table.name: {} for table in self.tables}
        """Each cached row as the database holds it: only rows that differ are written."""
        self._writing: list[tuple[str, tuple[Any, ...], tuple[Any, ...]]] = []

    def apply(self, record: Record) -> None:
        handler = self._handlers.get(record.type)
        if handler is not None:
            handler(record)
        if record.type not in PEOPLES_ACTIONS:
            self.watermark = max(self.watermark, record.occurred_at)

    # ------------------------------------------------------------ rows, for the handlers

    def entity(self, table: Table, ident: Any) -> Rows:
        """An entity's rows, to change: they are written at the next commit."""
        self._dirty[table.name].add(ident)
        return self.peek(table, ident)

    def peek(self, table: Table, ident: Any) -> Rows:
        """An entity's rows, to read only."""
        cache = self._cache[table.name]
        rows = cache.get(ident)
        if rows is None:
            stored = [] if self._complete[table.name] else self._fetch(table, ident)
            width = len(table.key)
            rows = cache[ident] = {tuple(row[:width]): list(row) for row in stored}
            written = self._written[table.name]
            for row in stored:
                written[tuple(row[:width])] = tuple(row)
        return rows

    def entity_rows(self, table: Table) -> list[list[Any]]:
        """The rows of every entity changed since the last commit."""
        cache = self._cache[table.name]
        return [row for ident in self._dirty[table.name] for row in cache[ident].values()]

    def _changed_rows(self, table: Table) -> list[tuple[Any, ...]]:
        """The rows of changed entities that differ from what the database holds."""
        cache, written, width = self._cache[table.name], self._written[table.name], len(table.key)
        changed = []
        for ident in self._dirty[table.name]:
            for key, row in cache[ident].items():
                now = tuple(row)
                if written.get(key) != now:
                    changed.append(now)
                    self._writing.append((table.name, now[:width], now))
        return changed

    def delete(self, table: Table, ident: Any, key: tuple[Any, ...]) -> None:
        if self.entity(table, ident).pop(key, None) is not None:
            self._deleted[table.name].append(key)
            self._written[table.name].pop(key, None)  # written again if it comes back

    # ------------------------------------------------------------ the runner's side

    def changes(self) -> list[tuple[Table, list[tuple[Any, ...]], list[list[Any]]]]:
        """(table, keys to delete, rows to write) for every table changed since the last commit."""
        self._writing = []
        return [(table, self._deleted[table.name], self._changed_rows(table)) for table in self.tables]

    def prepare(self) -> None:
        """Before the batch's commit: work that depends on the whole batch (the queue's clock)."""

    def take_commands(self, *, caught_up: bool) -> list[Any]:
        """Records the projector asks the engine to make (the queue's payment timeouts), once
        it has `caught_up` with its source."""
        return []

    def scan(self, table: Table, where: str, parameters: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Stored rows of `table` matching `where` (set by the runner; nothing before it is)."""
        return []

    def committed(self) -> None:
        """The changes are stored: start the next batch; empty the cache if it grew too big."""
        for name, key, row in self._writing:
            self._written[name][key] = row
        self._writing = []
        for table in self.tables:
            self._dirty[table.name] = set()
            self._deleted[table.name] = []
            if len(self._cache[table.name]) > CACHE_ENTITIES:
                self._cache[table.name] = {}
                self._written[table.name] = {}
                self._complete[table.name] = False

    def forget(self) -> None:
        """The changes were not stored (the transaction failed): what is in memory is not to be trusted."""
        self._writing = []
        for table in self.tables:
            self._cache[table.name] = {}
            self._written[table.name] = {}
            self._dirty[table.name] = set()
            self._deleted[table.name] = []
            self._complete[table.name] = False
