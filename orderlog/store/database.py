"""orderlog's own tables, in the same database as the event store's.

The event store (the eventsourcing library's tables) holds the records. Beside it live:
- `orderlog_meta`: small facts about the store (the master key's check value);
- `orderlog_customer_keys`: each customer's data key, wrapped by the master key; deleted
  on erasure, which is what makes erasure real (crypto-shredding);
- `orderlog_checkpoints`: every signed checkpoint issued;
- `orderlog_merkle_leaves` and `orderlog_merkle_nodes`: the persisted RFC 9162 tree over
  the log, extended at each checkpoint and read for proofs;
- `orderlog_map_entries` and `orderlog_map_nodes`: the map of stream heads (each stream's
  record count and last hash, in 65,536 buckets under a Merkle tree), as of every checkpoint
  size: each row holds the tree size from which it is true, so a proof against an older
  checkpoint reads the map as it was then;
- `orderlog_checkpoint_maps`: the map root each checkpoint signed, by its signature (a table of
  its own, so that stores made before the map open unchanged).

SQL here is written once with `?` placeholders and works on SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

from orderlog.store.location import StoreError, StoreLocation

_DDL = [
    "CREATE TABLE IF NOT EXISTS {meta} (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {customer_keys} (key_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, "
    "wrapped {blob} NOT NULL, created_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS {customer_keys_index} ON {customer_keys} (customer_id)",
    "CREATE TABLE IF NOT EXISTS {checkpoints} (tree_size {bigint} PRIMARY KEY, root_hash TEXT NOT NULL, "
    "issued_at TEXT NOT NULL, key_id TEXT NOT NULL, signature TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {merkle_leaves} (leaf_index {bigint} PRIMARY KEY, "
    "notification_id {bigint} NOT NULL UNIQUE, stream TEXT NOT NULL, stream_key TEXT NOT NULL, "
    "version {bigint} NOT NULL, record_hash TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {merkle_nodes} (level INTEGER NOT NULL, idx {bigint} NOT NULL, "
    "hash {blob} NOT NULL, PRIMARY KEY (level, idx))",
    "CREATE TABLE IF NOT EXISTS {map_entries} (tree_size {bigint} NOT NULL, stream TEXT NOT NULL, "
    "stream_key TEXT NOT NULL, bucket INTEGER NOT NULL, record_count {bigint} NOT NULL, head_hash TEXT NOT NULL, "
    "PRIMARY KEY (tree_size, stream, stream_key))",
    "CREATE INDEX IF NOT EXISTS orderlog_map_entries_by_bucket ON {map_entries} (bucket, tree_size)",
    "CREATE TABLE IF NOT EXISTS {map_nodes} (tree_size {bigint} NOT NULL, level INTEGER NOT NULL, "
    "idx INTEGER NOT NULL, hash {blob} NOT NULL, PRIMARY KEY (tree_size, level, idx))",
    "CREATE INDEX IF NOT EXISTS orderlog_map_nodes_by_place ON {map_nodes} (level, idx, tree_size)",
    "CREATE TABLE IF NOT EXISTS {checkpoint_maps} (signature TEXT PRIMARY KEY, map_root TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {credentials} (name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, "
    "changed_at TEXT NOT NULL)",
]

TABLES = (
    "meta",
    "customer_keys",
    "checkpoints",
    "merkle_leaves",
    "merkle_nodes",
    "map_entries",
    "map_nodes",
    "checkpoint_maps",
    "credentials",
)


class Cursor:
    """Rows as tuples and `?` placeholders, whichever the database."""

    def __init__(self, cursor: Any, postgres: bool):
        self._cursor = cursor
        self._postgres = postgres

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        self._cursor.execute(self._sql(sql), tuple(params))
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._cursor.executemany(self._sql(sql), rows)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [self._row(row) for row in self._cursor.fetchall()]

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._cursor.fetchone()
        return None if row is None else self._row(row)

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self._postgres else sql

    def _row(self, row: Any) -> tuple[Any, ...]:
        if not self._postgres:
            return tuple(row)
        return tuple(bytes(v) if isinstance(v, memoryview) else v for v in row.values())


class Database:
    """The store's database, for orderlog's own tables and read-only queries of the log."""

    def __init__(self, location: StoreLocation, datastore: Any, events_table: str):
        self.location = location
        self._datastore = datastore
        self.postgres = location.kind == "postgres"
        prefix = f'"{location.schema}".' if self.postgres else ""
        self.names = {name: f"{prefix}orderlog_{name}" for name in TABLES}
        self.names["customer_keys_index"] = "orderlog_customer_keys_by_customer"
        self.events_table = f'{prefix}"{events_table}"'
        self.position_column = "notification_id" if self.postgres else "rowid"
        self._scan_connection: sqlite3.Connection | None = None

    def create_tables(self) -> None:
        kinds = {
            "blob": "BYTEA" if self.postgres else "BLOB",
            "bigint": "BIGINT" if self.postgres else "INTEGER",
        }
        with self.transaction() as cursor:
            for statement in _DDL:
                cursor.execute(statement.format(**self.names, **kinds))

    @contextmanager
    def transaction(self, *, commit: bool = True) -> Iterator[Cursor]:
        with self._datastore.transaction(commit=commit) as cursor:
            yield Cursor(cursor, self.postgres)

    def sql(self, statement: str) -> str:
        """`statement` with `{meta}`-style table names filled in."""
        return statement.format(**self.names, events=self.events_table, position=self.position_column)

    # ------------------------------------------------------------ meta

    def get_meta(self, name: str) -> str | None:
        with self.transaction(commit=False) as cursor:
            row = cursor.execute(self.sql("SELECT value FROM {meta} WHERE name = ?"), (name,)).fetchone()
        return None if row is None else row[0]

    def set_meta_once(self, name: str, value: str) -> str:
        """Stores `value` unless a value is there already; returns the value that stays."""
        with self.transaction() as cursor:
            cursor.execute(
                self.sql("INSERT INTO {meta} (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"),
                (name, value),
            )
            row = cursor.execute(self.sql("SELECT value FROM {meta} WHERE name = ?"), (name,)).fetchone()
        assert row is not None
        return str(row[0])

    def set_meta(self, name: str, value: str) -> None:
        with self.transaction() as cursor:
            cursor.execute(
                self.sql("INSERT INTO {meta} (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = ?"),
                (name, value, value),
            )

    # ------------------------------------------------------------ console credentials

    def set_credential(self, name: str, password_hash: str, changed_at: str) -> None:
        with self.transaction() as cursor:
            cursor.execute(
                self.sql(
                    "INSERT INTO {credentials} (name, password_hash, changed_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET password_hash = ?, changed_at = ?"
                ),
                (name, password_hash, changed_at, password_hash, changed_at),
            )

    def get_credential(self, name: str) -> str | None:
        with self.transaction(commit=False) as cursor:
            row = cursor.execute(self.sql("SELECT password_hash FROM {credentials} WHERE name = ?"), (name,)).fetchone()
        return None if row is None else str(row[0])

    # ------------------------------------------------------------ the log, read directly

    def positions_of(self, originator_id: UUID) -> list[tuple[int, int]]:
        """(version, store position) of every record of one stream, in version order."""
        stored_id: Any = originator_id if self.postgres else originator_id.hex
        with self.transaction(commit=False) as cursor:
            return [
                (int(version), int(position))
                for version, position in cursor.execute(
                    self.sql(
                        "SELECT originator_version, {position} FROM {events} "
                        "WHERE originator_id = ? ORDER BY originator_version"
                    ),
                    (stored_id,),
                ).fetchall()
            ]

    def events_of(self, originator_ids: list[UUID]) -> list[tuple[str, int, str, bytes]]:
        """(originator id hex, version, topic, state) of every record of the given streams."""
        rows: list[tuple[str, int, str, bytes]] = []
        for start in range(0, len(originator_ids), 500):
            chunk = originator_ids[start : start + 500]
            params: list[Any] = [i if self.postgres else i.hex for i in chunk]
            marks = ",".join("?" * len(chunk))
            with self.transaction(commit=False) as cursor:
                rows += cursor.execute(
                    self.sql(
                        "SELECT originator_id, originator_version, topic, state FROM {events} "
                        f"WHERE originator_id IN ({marks}) ORDER BY originator_id, originator_version"
                    ),
                    params,
                ).fetchall()
        return [(str(o).replace("-", ""), int(v), t, s) for o, v, t, s in rows]

    def scan(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Rows of a read-only query over many rows, as plain tuples.

        On SQLite this reads through a read-only connection of its own: scanning the whole
        log (verification, checkpoints) is dominated by row handling, and the pool's
        connections build a Row object per row.
        """
        if not self.postgres:
            return self._scanner().execute(self.sql(statement), params).fetchall()
        with self.transaction(commit=False) as cursor:
            return cursor.execute(self.sql(statement), params).fetchall()

    def _scanner(self) -> sqlite3.Connection:
        if self._scan_connection is None:
            self._scan_connection = sqlite3.connect(
                self.location.sqlite_uri(writing=False), uri=True, check_same_thread=False
            )
            self._scan_connection.execute("PRAGMA query_only = ON")
            self._scan_connection.execute("PRAGMA cache_size = -65536")
            self._scan_connection.execute("PRAGMA mmap_size = 1073741824")
        return self._scan_connection

    def close(self) -> None:
        if self._scan_connection is not None:
            self._scan_connection.close()
            self._scan_connection = None

    def backup_to(self, target: Path) -> int:
        """SQLite's online backup of the whole store into `target` (one self-contained file,
        a consistent snapshot even while writers go on); returns the events it holds."""
        if self.postgres:
            raise StoreError(f"backup copies SQLite stores; for {self.location.label} use pg_dump --schema")
        source = sqlite3.connect(self.location.sqlite_uri(writing=False), uri=True)
        source.execute("PRAGMA query_only = ON")
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
            copy.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            (count,) = copy.execute(f"SELECT COUNT(*) FROM {self.events_table}").fetchone()
        finally:
            copy.close()
            source.close()
        return int(count)

    def check_readable(self) -> None:
        """Reads the events table once, so that a file that is no store fails on opening."""
        with self.transaction(commit=False) as cursor:
            cursor.execute(self.sql("SELECT 1 FROM {events} LIMIT 1")).fetchall()

    def count_by_topic(self) -> dict[str, int]:
        with self.transaction(commit=False) as cursor:
            rows = cursor.execute(self.sql("SELECT topic, COUNT(*) FROM {events} GROUP BY topic")).fetchall()
        return {topic: int(count) for topic, count in rows}

    # ------------------------------------------------------------ scrubbing

    def checkpoint_wal(self) -> None:
        """SQLite: copy the WAL into the file and truncate it (no old page images left)."""
        with self._datastore.get_connection(commit=True) as connection:
            cursor = connection.cursor()
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def vacuum_full(self, table: str) -> None:
        """PostgreSQL: rewrite a table so that no dead tuple survives in its files."""
        with self._datastore.get_connection() as connection:
            connection.execute(f"VACUUM FULL {self.names[table]}")
