"""Where the views live: a SQLite file beside the store (the default) or PostgreSQL (`--views URL`).

Each view's tables exist in generations (`holds_by_sku_g1`, `_g2`, ...) and readers query a
plain SQL view of the same name without the suffix (`holds_by_sku`), which points at the
current generation. A replay builds the next generation beside the live one and switches
the SQL views over in one transaction, so a reader sees the old views or the new, never a
half-built one, on SQLite and PostgreSQL alike.

Positions consumed are kept by the eventsourcing library's tracking recorders, in the view
database, and written in the transaction that writes the view rows they produced: a crash
leaves both or neither, and a redelivered position fails the transaction.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from eventsourcing.persistence import IntegrityError, PersistenceError, Tracking
from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder

from orderlog.store.location import SQLITE_LOCK_TIMEOUT_SECONDS, StoreLocation
from orderlog.store.sqlite_persistence import configure_connections

VIEW_CONNECTION_SETTINGS = ("PRAGMA synchronous = NORMAL", "PRAGMA cache_size = -16384")
"""synchronous=NORMAL: in WAL mode a power cut can lose the last commits but never corrupt the
file; a batch's rows and the positions it consumed are lost together, so the projectors fold
those records again, once. It saves an fsync per batch. A 16 MB page cache per connection: the
projectors keep their hot rows in memory themselves."""

TRACKING_TABLE = "view_tracking"
QUERY_SECONDS = 300.0
"""An analyst's query stops after this long (`views sql --timeout`): one runaway query must
not hold a core, or a PostgreSQL backend, until somebody notices."""
PROGRESS_STEPS = 100_000
"""SQLite virtual-machine steps between checks for Ctrl-C and the time limit (about a millisecond)."""
"""PostgreSQL only (on SQLite the library names it `tracking`)."""

CATALOGUE = (
    "CREATE TABLE IF NOT EXISTS view_generations ("
    "projector TEXT NOT NULL, generation INTEGER NOT NULL, watermark TEXT NOT NULL, "
    "until TEXT, live INTEGER NOT NULL, PRIMARY KEY (projector, generation))"
)
"""One row per generation of a projector's tables: its event-time watermark (the latest
`occurred_at` folded into it), the `--until` it was built to, and whether readers see it."""


TAKE_WRITE_LOCK = "UPDATE view_generations SET live = live WHERE 0"
"""A write that changes nothing: SQLite takes the write lock for it, waiting for it if need be."""


class ViewQueryError(ValueError):
    """An analyst's query that the view database refused (bad SQL, or an attempt to write)."""


class PositionTaken(IntegrityError):
    """A position was recorded already: the batch was applied before (a redelivery)."""


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "text" or "int"


def text(name: str) -> Column:
    return Column(name, "text")


def integer(name: str) -> Column:
    return Column(name, "int")


@dataclass(frozen=True)
class Table:
    """A view table, declared once: its DDL, upsert and reads are derived from the declaration."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    doc: str
    working: bool = False
    """The projector's own bookkeeping (facts it folds from), not a view people read."""
    indexes: tuple[tuple[str, ...], ...] = ()
    """Columns queried by more than the key (the queue's next deadline)."""

    def create_indexes(self, generation: int) -> list[str]:
        table = self.physical(generation)
        return [
            f"CREATE INDEX IF NOT EXISTS {table}_{'_'.join(columns)} ON {table} ({', '.join(columns)})"
            for columns in self.indexes
        ]

    def physical(self, generation: int) -> str:
        return f"{self.name}_g{generation}"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def index(self, name: str) -> int:
        """Where column `name` sits in a row (handlers change rows by position: it is the hot path)."""
        return self.names.index(name)

    def create(self, generation: int, *, postgres: bool) -> str:
        kinds = {"text": "TEXT", "int": "BIGINT" if postgres else "INTEGER"}
        columns = ", ".join(f"{column.name} {kinds[column.kind]}" for column in self.columns)
        return (
            f"CREATE TABLE IF NOT EXISTS {self.physical(generation)} ({columns}, PRIMARY KEY ({', '.join(self.key)}))"
        )

    def upsert(self, generation: int) -> str:
        updates = ", ".join(f"{name} = excluded.{name}" for name in self.names if name not in self.key)
        return (
            f"INSERT INTO {self.physical(generation)} ({', '.join(self.names)}) "
            f"VALUES ({', '.join('?' * len(self.columns))}) "
            f"ON CONFLICT ({', '.join(self.key)}) DO " + (f"UPDATE SET {updates}" if updates else "NOTHING")
        )

    def delete(self, generation: int) -> str:
        return f"DELETE FROM {self.physical(generation)} WHERE " + " AND ".join(f"{name} = ?" for name in self.key)

    def select(self, generation: int, by: Sequence[str]) -> str:
        where = " AND ".join(f"{name} = ?" for name in by)
        return f"SELECT {', '.join(self.names)} FROM {self.physical(generation)} WHERE {where}"


class ViewStore:
    """The view database: tables by generation, their tracking positions and watermarks."""

    def __init__(self, location: StoreLocation):
        self.location = location
        self.postgres = location.kind == "postgres"
        self._made: set[str] = set()
        if self.postgres:  # psycopg is an extra: imported only when PostgreSQL is asked for
            from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder

            self.datastore: Any = PostgresDatastore(
                location.dbname,
                location.host,
                location.port,
                location.user,
                location.password,
                schema=location.schema,
                pool_size=2,
                max_overflow=2,
                lock_timeout=30,
            )
            self.tracking: Any = PostgresTrackingRecorder(self.datastore, tracking_table_name=TRACKING_TABLE)
        else:
            assert location.path is not None
            self.datastore = SQLiteDatastore(
                str(location.path), lock_timeout=SQLITE_LOCK_TIMEOUT_SECONDS, pool_size=2, max_overflow=2
            )
            configure_connections(self.datastore.pool, VIEW_CONNECTION_SETTINGS)
            self.tracking = SQLiteTrackingRecorder(self.datastore)
        self.tracking.create_table()
        with self._transaction(commit=True) as cursor:
            cursor.execute(CATALOGUE)

    @contextmanager
    def _transaction(self, *, commit: bool) -> Iterator[Any]:
        """The library's transaction; on PostgreSQL with orderlog's names resolved in the views'
        schema (the library qualifies its own tables; orderlog's SQL names them plainly)."""
        with self.datastore.transaction(commit=commit) as cursor:
            if self.postgres:
                cursor.execute(f'SET LOCAL search_path TO "{self.location.schema}"')
            yield cursor

    def sql(self, statement: str) -> str:
        """orderlog writes `?` placeholders; psycopg wants `%s`."""
        return statement.replace("?", "%s") if self.postgres else statement

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A writing transaction that holds the write lock from its first statement: on SQLite
        a transaction that read first and then wrote would fail at once ("database is locked")
        if another process wrote in between, instead of waiting its turn."""
        with self._transaction(commit=True) as cursor:
            if not self.postgres:
                cursor.execute(TAKE_WRITE_LOCK)
            yield _Cursor(cursor, self)

    def query(self, statement: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._transaction(commit=False) as cursor:
            cursor.execute(self.sql(statement), tuple(parameters))
            return [_values(row) for row in cursor.fetchall()]

    def rows(self, statement: str, parameters: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """A query's rows as dicts by column name: what reports return and render."""
        with self._transaction(commit=False) as cursor:
            cursor.execute(self.sql(statement), tuple(parameters))
            return [dict(row) for row in cursor.fetchall()]  # sqlite3.Row and psycopg's dict rows

    def read_only(self, statement: str, *, seconds: float = QUERY_SECONDS) -> list[dict[str, Any]]:
        """An analyst's query, on a connection that cannot write, stopped after `seconds`."""
        if self.postgres:
            import psycopg

            try:
                with self._transaction(commit=False) as cursor:
                    cursor.execute("SET TRANSACTION READ ONLY")
                    cursor.execute(f"SET LOCAL statement_timeout = {int(seconds * 1000)}")
                    cursor.execute(statement, prepare=True)  # one statement: no `COMMIT; DELETE ...`
                    return [dict(row) for row in cursor.fetchall()] if cursor.description else []
            except (psycopg.Error, PersistenceError) as error:
                if isinstance(error.__cause__ or error, psycopg.errors.QueryCanceled):  # the library wraps it
                    raise ViewQueryError(_too_long(seconds)) from None
                raise ViewQueryError(f"query refused: {' '.join(str(error).split())}") from None
        deadline = time.monotonic() + seconds
        connection = sqlite3.connect(self.read_only_uri(), uri=True)
        try:
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA query_only = 1")
            connection.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)  # no ATTACH: it would create files
            # SQLite checks no signals: Ctrl-C reaches Python only in this callback (which
            # swallows it, stopping the query), and the time limit is checked here too.
            connection.set_progress_handler(lambda: time.monotonic() > deadline, PROGRESS_STEPS)
            return [dict(row) for row in connection.execute(statement).fetchall()]
        except sqlite3.OperationalError as error:
            if str(error) != "interrupted":
                raise ViewQueryError(f"query refused: {' '.join(str(error).split())}") from None
            if time.monotonic() > deadline:
                raise ViewQueryError(_too_long(seconds)) from None
            raise KeyboardInterrupt from None  # the Ctrl-C the callback swallowed
        except sqlite3.Error as error:
            raise ViewQueryError(f"query refused: {' '.join(str(error).split())}") from None
        finally:
            connection.close()

    def read_only_uri(self) -> str:
        assert self.location.path is not None
        return f"file:{quote(str(self.location.path.absolute()))}?mode=ro"

    def read_only_url(self) -> str:
        """How an analyst's own tool connects without being able to change anything."""
        if not self.postgres:
            return f"sqlite3 '{self.read_only_uri()}'"
        where = self.location
        options = quote(f"-c default_transaction_read_only=on -c search_path={where.schema}")
        return f"postgresql://{where.user}@{where.host}:{where.port}/{where.dbname}?options={options}"

    def has(self, view: str) -> bool:
        """Whether readers can query `view` (its projector has run here at least once). A view
        once made stays (a replay points it at another generation), so a yes is remembered."""
        if view in self._made:
            return True
        if self.postgres:
            found = self.query(
                "SELECT 1 FROM information_schema.views WHERE table_schema = ? AND table_name = ?",
                (self.location.schema, view),
            )
        else:
            found = self.query("SELECT 1 FROM sqlite_master WHERE type = 'view' AND name = ?", (view,))
        if found:
            self._made.add(view)
        return bool(found)

    def record_positions(self, cursor: Any, positions: Sequence[Tracking], read_from: Sequence[int] = ()) -> None:
        """Inside the batch's transaction; PositionTaken if one was recorded before, or if the
        position stored is not the one the batch was read from (`read_from`, one per position):
        another runner moved on meanwhile, and part of this batch may be folded already."""
        for position, start in zip(positions, read_from, strict=False):
            stored = self.tracking._max_tracking_id(position.application_name, cursor.raw) or 0
            if stored != start:
                raise PositionTaken(f"{position.application_name} is at {stored}, not {start}: another runner moved it")
        for position in positions:
            try:
                self.tracking._insert_tracking(cursor.raw, position)
            except IntegrityError as error:
                raise PositionTaken(str(error)) from None

    def position(self, name: str) -> int | None:
        return self.tracking.max_tracking_id(name)

    def stamp(self) -> tuple[tuple[str, int], ...]:
        """Every projector generation's position: it changes whenever any view does (a batch
        committed, a generation switched in), so a reader may keep what it read until then."""
        table = TRACKING_TABLE if self.postgres else "tracking"  # the library's SQLite name is fixed
        rows = self.query(f"SELECT application_name, MAX(notification_id) FROM {table} GROUP BY application_name")
        return tuple(sorted((str(name), int(position)) for name, position in rows))

    def close(self) -> None:
        self.datastore.close()


class _Cursor:
    """The transaction's cursor, taking `?` placeholders on either database."""

    def __init__(self, cursor: Any, store: ViewStore):
        self.raw = cursor
        self._store = store

    def execute(self, statement: str, parameters: Sequence[Any] = ()) -> None:
        self.raw.execute(self._store.sql(statement), tuple(parameters))

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.raw.executemany(self._store.sql(statement), rows)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [_values(row) for row in self.raw.fetchall()]


def _values(row: Any) -> tuple[Any, ...]:
    return tuple(row.values()) if isinstance(row, dict) else tuple(row)


def _too_long(seconds: float) -> str:
    return f"query stopped: it ran longer than {seconds:g} s (views sql --timeout SECONDS)"
