"""Several input positions recorded in the transaction that stores a batch.

The eventsourcing library's process recorders take one `tracking` per insert. The Kafka
ingest takes a poll's messages from several partitions as one batch, one transaction and
one fsync, and each partition has a position of its own; these recorders insert every
position given as `positions=` beside the events. A position recorded already fails the
transaction with the library's IntegrityError, exactly as the library's own tracking does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresFactory, PostgresProcessRecorder
from eventsourcing.sqlite import SQLiteProcessRecorder


class _SeveralPositions:
    def _insert_events(self, cursor: Any, stored_events: Sequence[Any], **kwargs: Any) -> Any:
        positions: Sequence[Tracking] = kwargs.get("positions", ())
        for position in positions:
            self._insert_tracking(cursor, tracking=position)  # type: ignore[attr-defined]
        return super()._insert_events(cursor, stored_events, **kwargs)  # type: ignore[misc]


class SQLiteRecorder(_SeveralPositions, SQLiteProcessRecorder):
    pass


class PostgresRecorder(_SeveralPositions, PostgresProcessRecorder):
    pass


class OrderlogPostgresFactory(PostgresFactory):
    """Selected through the library's `PERSISTENCE_MODULE` setting (orderlog.store.location)."""

    process_recorder_class = PostgresRecorder
