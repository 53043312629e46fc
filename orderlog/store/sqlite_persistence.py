"""The eventsourcing SQLite persistence, with orderlog's settings on every connection.

- `secure_delete`: erasing a customer deletes their data key. Without it SQLite leaves
  deleted (and moved) bytes in free space inside the file, where the wrapped key could
  be read back; with it, SQLite overwrites them with zeros.
- a 64 MiB page cache: the events table's primary key is (stream UUID, version), so
  inserts land at random places in that index; with SQLite's default 2 MiB cache, write
  speed falls as soon as the index outgrows it (about 50,000 events).

Selected through the library's `PERSISTENCE_MODULE` setting (orderlog.store.location).
"""

from __future__ import annotations

from typing import Any

from eventsourcing.sqlite import SQLiteConnection, SQLiteFactory

from orderlog.store.positions import SQLiteRecorder

CONNECTION_SETTINGS = ("PRAGMA secure_delete = ON", "PRAGMA cache_size = -65536")
READ_ONLY_SETTINGS = ("PRAGMA query_only = ON",)
"""A reader's connections refuse every write and every DDL statement."""


class OrderlogSQLiteFactory(SQLiteFactory):
    process_recorder_class = SQLiteRecorder

    def __init__(self, env: Any):
        super().__init__(env)
        pool = self.datastore.pool
        settings = CONNECTION_SETTINGS
        if self.env.get("SQLITE_QUERY_ONLY") == "y":
            pool.is_journal_mode_wal = True  # a reader neither needs nor may switch the journal mode
            settings += READ_ONLY_SETTINGS
        configure_connections(pool, settings)


def configure_connections(pool: Any, settings: tuple[str, ...]) -> None:
    """Every connection the library's pool makes runs `settings` (PRAGMAs) first."""
    create_connection = pool._create_connection

    def create_configured_connection() -> SQLiteConnection:
        connection = create_connection()
        for setting in settings:
            connection._sqlite_conn.execute(setting)
        return connection

    pool._create_connection = create_configured_connection
