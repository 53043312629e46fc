"""The log: every stored record in store order, read a page at a time.

This is the only code that pages through the log. The verifier reads its rows (it hashes
the stored bytes themselves); everything else reads its records: the summary, the source
registry, and the relay and projectors that follow the log. Positions are the store's own
(SQLite rowid, PostgreSQL notification id), assigned in commit order, so "after position
P" is a stable place to resume from. Reads go through a read-only connection.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from orderlog.domain.record import Record
from orderlog.store.database import Database
from orderlog.store.mapper import record_of, topic_of

Row = tuple[int, str, int, str, bytes]
"""(store position, stream id hex, version, topic, stored state) of one stored record."""

PAGE = 20_000


class LogReader:
    def __init__(self, database: Database):
        self._database = database

    def rows(self, after: int = 0, *, limit: int | None = None, topics: Sequence[str] = ()) -> Iterator[Row]:
        """Stored rows after position `after`, in store order; `topics` (`order/PaymentCaptured`)
        narrows them in SQL."""
        remaining = limit
        while remaining is None or remaining > 0:
            page = self._page(after, PAGE if remaining is None else min(PAGE, remaining), topics)
            yield from page
            if len(page) < (PAGE if remaining is None else min(PAGE, remaining)):
                return
            after = page[-1][0]
            if remaining is not None:
                remaining -= len(page)

    def records(
        self, after: int = 0, *, limit: int | None = None, types: Sequence[tuple[str, str]] = ()
    ) -> Iterator[tuple[int, Record]]:
        """(position, record) after position `after`, in store order; `types` are
        (stream, event type) pairs to narrow them to."""
        topics = [topic_of(stream, event_type) for stream, event_type in types]
        for position, originator_id, version, topic, state in self.rows(after, limit=limit, topics=topics):
            yield position, record_of(originator_id, version, topic, state)

    def count_after(self, after: int) -> int:
        """How many records lie after position `after` (what a follower still has to read)."""
        (row,) = self._database.scan("SELECT COUNT(*) FROM {events} WHERE {position} > ?", (after,))
        return int(row[0])

    def head(self) -> int:
        """The position of the last stored record (0 for an empty log)."""
        (row,) = self._database.scan("SELECT COALESCE(MAX({position}), 0) FROM {events}", ())
        return int(row[0])

    def _page(self, after: int, size: int, topics: Sequence[str]) -> list[Row]:
        where = f" AND topic IN ({','.join('?' * len(topics))})" if topics else ""
        rows = self._database.scan(
            "SELECT {position}, originator_id, originator_version, topic, state FROM {events} "
            f"WHERE {{position}} > ?{where} ORDER BY {{position}} LIMIT ?",
            (after, *topics, size),
        )
        if not self._database.postgres:
            return rows  # type: ignore[return-value]
        return [(p, o.hex, v, t, bytes(s)) for p, o, v, t, s in rows]
