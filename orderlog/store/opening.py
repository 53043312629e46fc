"""Opening a store: the checks before, and the lock that lets several processes create one.

The eventsourcing library creates its tables when an application starts; two processes
starting at once on a new store would race to create them (and the master key). Here is
what makes that safe, and what turns the database's errors into a sentence a user can act
on. The service itself is assembled in orderlog.bootstrap.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from typing import Any

from orderlog.store.location import StoreError, StoreLocation


def check_location(location: StoreLocation, *, create: bool) -> None:
    """What can be said before connecting: no store there, a missing directory, a directory."""
    check_not_side_file(location, "store")
    if not create and not location.exists():
        raise StoreError(f"no store at {location.label}: publish events first, or pass --store / set ORDERLOG_STORE")
    if location.kind == "postgres" and not create:
        check_postgres_store(location)
    if location.kind == "sqlite" and location.path is not None:
        parent = location.path.parent
        if not parent.exists():
            raise StoreError(f"cannot create store {location.label}: directory {parent} does not exist")
        if location.path.is_dir():
            raise StoreError(f"store {location.label} is a directory, not a store file")


STORE_TABLE = "stored_events"
STORE_MARK = "orderlog_meta"
"""orderlog's own table: another eventsourcing application's store has `stored_events` too."""
VIEWS_TABLE = "view_generations"
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def check_not_side_file(location: StoreLocation, what: str) -> None:
    """SQLite's own files beside a database (its write-ahead log, shared memory, journal) are
    never a database: one built there is deleted or corrupts the database it belongs to."""
    if location.kind == "sqlite" and location.path is not None and location.path.name.endswith(SQLITE_SIDE_FILES):
        raise StoreError(f"{what} {location.label} is a file SQLite keeps beside a database; name a database file")


def check_sqlite_store(location: StoreLocation, *, create: bool) -> None:
    """A SQLite file given as the store must hold a store; only a new or empty one may be
    made into one (never the views database, nor another application's database). Called
    under the creation lock, so that a store another process is making is seen whole."""
    if location.kind != "sqlite" or location.path is None:
        return
    tables = sqlite_tables(location, f"store {location.label}")
    if tables is not None and {STORE_TABLE, STORE_MARK} <= tables:
        return
    if tables is not None and VIEWS_TABLE in tables:
        raise StoreError(f"{location.label} is a views database, not a store: name the store (--store)")
    if tables is not None and STORE_TABLE in tables:
        raise StoreError(f"{location.label} holds another application's event store, not orderlog's")
    if tables or not create:
        raise StoreError(f"{location.label} holds no orderlog store")


def sqlite_tables(location: StoreLocation, what: str) -> set[str] | None:
    """The tables of a SQLite file, read as a store's readers read (nothing written, nothing
    left beside it); None for no file or an empty one. StoreError for a file that is no
    SQLite database."""
    path = location.path
    if path is None or not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        with contextlib.closing(sqlite3.connect(location.sqlite_uri(writing=False), uri=True)) as connection:
            connection.execute("PRAGMA query_only = 1")
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    except sqlite3.Error as error:
        raise StoreError(f"cannot open {what}: {store_problem(error)}") from None
    return {name for (name,) in rows}


@contextlib.contextmanager
def creation_lock(location: StoreLocation, *, shared: bool = False) -> Iterator[None]:
    """Serialises the creation of a store between processes (two publishers starting at
    once on a new store would otherwise race to create its tables and its master key), and
    keeps a reader (`shared`) from opening a store whose tables are half made.

    SQLite: a flock on the store's directory (never on the store file itself: closing any
    descriptor of that file would drop SQLite's own locks). PostgreSQL: an advisory lock
    named after the schema, on a connection of its own.
    """
    if location.kind == "sqlite":
        assert location.path is not None
        descriptor = os.open(location.path.absolute().parent, os.O_RDONLY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # releases the lock
        return
    psycopg = _psycopg()
    try:
        with location.connect(connect_timeout=5, autocommit=True) as connection:
            if shared:
                connection.execute("SELECT pg_advisory_lock_shared(hashtext(%s))", (f"orderlog:{location.schema}",))
            else:
                connection.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"orderlog:{location.schema}",))
                connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{location.schema}"')
            yield
    except psycopg.OperationalError as error:
        raise StoreError(f"cannot connect to {location.label}: {_first_line(error)}") from None


def check_postgres_store(location: StoreLocation) -> None:
    """A reader's PostgreSQL store must answer and hold a store: say which is missing."""
    psycopg = _psycopg()
    try:
        with location.connect(connect_timeout=5, autocommit=True) as connection:
            found = connection.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = 'orderlog_events'",
                (location.schema,),
            ).fetchone()
    except psycopg.Error as error:
        raise StoreError(f"cannot connect to {location.label}: {_first_line(error)}") from None
    if found is None:
        raise StoreError(f"no store at {location.label}: publish events first, or pass --store / set ORDERLOG_STORE")


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise StoreError("PostgreSQL support is not installed: pip install 'orderlog[postgres]'") from None
    return psycopg


def store_problem(error: BaseException) -> str:
    text = _first_line(error)
    if "file is not a database" in text or "database disk image is malformed" in text:
        return f"{text} (it is not an orderlog store, or it is damaged)"
    if "no such table" in text or "does not exist" in text:
        return f"{text} (it holds no orderlog store)"
    return text


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
