"""Editing a store behind orderlog's back, as an operator with database access could."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from orderlog.audit_verify import canonical_json
from orderlog.store.location import StoreLocation

Row = tuple[int, str, int, str, bytes]
ORDERLOG_AUDIT_TABLES = ("merkle_leaves", "merkle_nodes", "map_entries", "map_nodes", "checkpoints", "checkpoint_maps")


class RawStore:
    """Direct SQL on the events table (and orderlog's own tables) of a SQLite or PostgreSQL store."""

    def __init__(self, location: StoreLocation):
        self.location = location
        self.postgres = location.kind == "postgres"
        prefix = f'"{location.schema}".' if self.postgres else ""
        self.events = f"{prefix}orderlog_events" if self.postgres else "stored_events"
        self.prefix = prefix
        self.position = "notification_id" if self.postgres else "rowid"

    @contextmanager
    def cursor(self) -> Iterator[Any]:
        if self.postgres:
            with self.location.connect() as connection:
                yield connection.cursor()
                connection.commit()
        else:
            connection = sqlite3.connect(str(self.location.path))
            try:
                yield connection.cursor()
                connection.commit()
            finally:
                connection.close()

    def sql(self, text: str) -> str:
        """`text` with `?` placeholders as the database wants them."""
        return text.replace("?", "%s") if self.postgres else text

    def rows(self) -> list[Row]:
        with self.cursor() as cursor:
            cursor.execute(
                f"SELECT {self.position}, originator_id, originator_version, topic, state FROM {self.events} "
                f"ORDER BY {self.position}"
            )
            return [(int(p), str(o).replace("-", ""), int(v), t, bytes(s)) for p, o, v, t, s in cursor.fetchall()]

    def set_state(self, position: int, state: bytes) -> None:
        with self.cursor() as cursor:
            cursor.execute(self.sql(f"UPDATE {self.events} SET state = ? WHERE {self.position} = ?"), (state, position))

    def delete(self, position: int) -> None:
        with self.cursor() as cursor:
            cursor.execute(self.sql(f"DELETE FROM {self.events} WHERE {self.position} = ?"), (position,))

    def swap(self, first: Row, second: Row) -> None:
        """Exchange two records' places in the log (each stays in its own stream)."""
        with self.cursor() as cursor:
            for row in (first, second):
                cursor.execute(self.sql(f"DELETE FROM {self.events} WHERE {self.position} = ?"), (row[0],))
            self._insert(cursor, first[0], second)
            self._insert(cursor, second[0], first)

    def insert_at(self, position: int, row: Row) -> None:
        """A record inserted in the middle of the log: later positions move up by one."""
        with self.cursor() as cursor:
            cursor.execute(
                self.sql(
                    f"UPDATE {self.events} SET {self.position} = {self.position} + 1000000 WHERE {self.position} >= ?"
                ),
                (position,),
            )
            cursor.execute(
                self.sql(
                    f"UPDATE {self.events} SET {self.position} = {self.position} - 999999 WHERE {self.position} >= ?"
                ),
                (1000000,),
            )
            self._insert(cursor, position, row)

    def _insert(self, cursor: Any, position: int, row: Row) -> None:
        _p, originator_id, version, topic, state = row
        cursor.execute(
            self.sql(
                f"INSERT INTO {self.events} ({self.position}, originator_id, originator_version, topic, state) "
                "VALUES (?, ?, ?, ?, ?)"
            ),
            (position, originator_id, version, topic, state),
        )

    def forget_tree(self) -> None:
        """What a thorough forger does last: drop orderlog's persisted tree and map, and kept checkpoints."""
        with self.cursor() as cursor:
            for table in ORDERLOG_AUDIT_TABLES:
                cursor.execute(f"DELETE FROM {self.prefix}orderlog_{table}")


def forged_order_row(template: dict[str, Any], key: str) -> Row:
    """A well-formed, correctly hashed first record of an order that never existed."""
    from orderlog.domain.stream import stream_id

    record = {**template, "key": key, "version": 1, "event_id": f"forged-{key}", "prev_hash": "0" * 64}
    return (0, stream_id("order", key).hex, 1, f"order/{record['type']}", reseal(record))


def reseal(record: dict[str, Any]) -> bytes:
    """A record's stored bytes with a freshly computed, valid hash."""
    body = {k: v for k, v in record.items() if k != "hash"}
    digest = hashlib.sha256(canonical_json(body)).hexdigest()
    return canonical_json(body)[:-1] + b',"hash":"' + digest.encode() + b'"}'


def rewrite_with_valid_hashes(raw: RawStore, target: Row, change: Any) -> None:
    """Alter one record and recompute every hash after it in its chain: no link breaks."""
    chain = [row for row in raw.rows() if row[1] == target[1]]
    previous = None
    for row in chain:
        record = json.loads(row[4])
        if row[0] == target[0]:
            change(record)
        if previous is not None:
            record["prev_hash"] = previous
        state = reseal(record)
        previous = json.loads(state)["hash"]
        raw.set_state(row[0], state)
