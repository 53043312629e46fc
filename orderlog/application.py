"""The service layer: orderlog's eventsourcing Application and how a store is opened.

`OrderLog` is an eventsourcing `Application`: persistence is chosen by environment (SQLite
or PostgreSQL, see orderlog.store.location), aggregates are stream aggregates, records
are kept by `RecordMapper`. Its recorder is a *process* recorder, so that a batch of
records can be stored atomically with the position of the input that caused it (the
Kafka ingest builds on this).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import (
    ApplicationRecorder,
    InfrastructureFactoryError,
    Mapper,
    PersistenceError,
    StoredEvent,
)

from orderlog.domain.contract import ENGINE_SOURCE
from orderlog.domain.envelope import Upstream
from orderlog.domain.instants import format_instant
from orderlog.domain.stream import StreamAggregate
from orderlog.store.database import Database
from orderlog.store.location import StoreError, StoreLocation
from orderlog.store.mapper import RecordMapper

S = TypeVar("S", bound=StreamAggregate)
Keep = Callable[[StreamAggregate.Event], bool]


class OrderLog(Application[UUID]):
    name = "orderlog"

    def __init__(self, location: StoreLocation):
        self.location = location
        super().__init__(env=location.library_env())
        self.database = Database(location, self.factory.datastore, self.recorder.events_table_name)  # type: ignore[attr-defined]
        self.database.create_tables()

    def construct_mapper(self) -> Mapper[UUID]:
        return RecordMapper(transcoder=self.factory.transcoder())

    def construct_recorder(self) -> ApplicationRecorder:
        return self.factory.process_recorder()

    # ------------------------------------------------------------ reading streams

    def stream(self, cls: type[S], key: str, *, version: int | None = None, keep: Keep | None = None) -> S | None:
        """A stream's state, or None if it does not exist (or did not yet, for `keep`)."""
        projector = _replay_all if keep is None else functools.partial(_replay_kept, cls, keep)
        try:
            return self.repository.get(cls.id_for(key), version=version, projector_func=projector)  # type: ignore[no-any-return]
        except AggregateNotFoundError:
            return None

    def streams(self, wanted: dict[UUID, type[StreamAggregate]]) -> dict[UUID, StreamAggregate]:
        """Many streams at once (one query per 500), for batch work; absent ones are left out."""
        found: dict[UUID, list[Any]] = {}
        for originator_id, version, topic, state in self.database.events_of(list(wanted)):
            stored = StoredEvent(
                originator_id=UUID(originator_id),
                originator_version=version,
                topic=topic,
                state=state,
            )
            found.setdefault(stored.originator_id, []).append(self.mapper.to_domain_event(stored))  # type: ignore[arg-type]
        return {stream_id: _replay_all(None, events) for stream_id, events in found.items()}

    def records(self, cls: type[StreamAggregate], key: str) -> list[StreamAggregate.Event]:
        """Every record of one stream, in version order."""
        return list(self.events.get(cls.id_for(key)))  # type: ignore[arg-type]

    def save_events(self, events: Sequence[Any]) -> None:
        """Stores events in one transaction; a stale stream fails the whole batch.

        Goes to the recorder directly: the event store's `put` also builds a Recording and
        a Notification object per event, which cost more than the insert and are unused here.
        """
        if events:
            self.recorder.insert_events([self.mapper.to_stored_event(event) for event in events])


def _replay_all(state: Any, events: Iterable[Any]) -> Any:
    # The library's default projector checks a runtime Protocol per event, which costs
    # more than the event itself; stream events always know how to mutate.
    for event in events:
        state = event.mutate(state)
    return state


def _replay_kept(cls: type[StreamAggregate], keep: Keep, state: Any, events: Iterable[Any]) -> Any:
    return cls.replay(events, keep)


def open_store(location: StoreLocation, *, create: bool) -> OrderLog:
    """Opens (and with `create`, creates) the store at `location`, or raises StoreError."""
    if not create and not location.exists():
        raise StoreError(f"no store at {location.label}: publish events first, or pass --store / set ORDERLOG_STORE")
    if location.kind == "sqlite" and location.path is not None:
        parent = location.path.parent
        if not parent.exists():
            raise StoreError(f"cannot create store {location.label}: directory {parent} does not exist")
    if location.kind == "postgres":
        _ensure_schema(location)
    try:
        return OrderLog(location)
    except (PersistenceError, InfrastructureFactoryError, OSError) as error:
        raise StoreError(f"cannot open store {location.label}: {_first_line(error)}") from None


def _ensure_schema(location: StoreLocation) -> None:
    try:
        import psycopg
    except ImportError:
        raise StoreError("PostgreSQL support is not installed: pip install 'orderlog[postgres]'") from None
    try:
        with location.connect(connect_timeout=5, autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{location.schema}"')
    except psycopg.Error as error:
        raise StoreError(f"cannot connect to {location.label}: {_first_line(error)}") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def own_record(event_type: str, key: str, data: dict[str, Any], actor: str | None) -> Upstream:
    """An envelope for something orderlog records on its own account (source `orderlog`)."""
    return Upstream(
        type=event_type,
        key=key,
        event_id=f"orderlog/{event_type}/{uuid4().hex}",
        occurred_at=format_instant(datetime.now(UTC)),
        source=ENGINE_SOURCE,
        actor=actor,
        correlation_id=None,
        data=data,
    )


def record_own(app: OrderLog, cls: type[S], upstream: Upstream) -> S:
    """Appends (or opens the stream with) a record orderlog makes itself, and stores it."""
    stream = app.stream(cls, upstream.key)
    if stream is None:
        stream = cls.open(upstream)
    else:
        stream.handle(upstream)
    app.save_events(stream.collect_events())
    return stream
