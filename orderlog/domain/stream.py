"""Streams: aggregates whose every event is one record of something that happened.

An order, a SKU's stock counts, a customer's erasures and a source's keys are each a
stream. Every event of a stream is a record (orderlog.domain.record): the upstream
envelope plus what orderlog adds on writing it (version, record time, the hash of the
previous record, its own hash). A stream's state is a fold of its records, and the same
fold serves every reader: the write side, a moment in the past, the projectors.

The record is built and sealed here, once: its RFC 8785 canonical JSON is hashed, and
those same bytes are what the store keeps (see orderlog.store.mapper). Idempotency is a
property of the stream: an event id it already holds is a duplicate, never a second
record; a fact whose natural key it holds is the same fact, or a conflict.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, ClassVar, Protocol, Self
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from orderlog.audit_verify import GENESIS_HASH
from orderlog.domain.canonical import canonical_bytes
from orderlog.domain.contract import EVENT_TYPES
from orderlog.domain.envelope import Upstream
from orderlog.domain.instants import format_instant
from orderlog.domain.record import Record, stored_bytes
from orderlog.domain.redelivery import differences

STREAM_NAMESPACE = UUID("0b6f3c36-5f2c-5c8e-9d5a-6f72646572c0")


@lru_cache(maxsize=1 << 17)
def stream_id(stream: str, key: str) -> UUID:
    """The store's id of a stream: derived, so that upstream ids need no lookup table."""
    return uuid5(STREAM_NAMESPACE, f"{stream}/{key}")


class Sealer(Protocol):
    def seal(self, record: dict[str, Any]) -> tuple[bytes, str]:
        """The bytes the store keeps for `record` and the hash they carry."""


class HashChainSealer:
    """Canonical JSON and its SHA-256: what every record carries (audit_verify.record_hash)."""

    def seal(self, record: dict[str, Any]) -> tuple[bytes, str]:
        body = canonical_bytes(record)
        record_hash = hashlib.sha256(body).hexdigest()
        return stored_bytes(body, record_hash), record_hash


class UnsealedRecords:
    """No canonical form and no hash. Only `make bench` uses it, to price tamper evidence."""

    def seal(self, record: dict[str, Any]) -> tuple[bytes, str]:
        body = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
        return stored_bytes(body, GENESIS_HASH), GENESIS_HASH


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    reason: str = ""


class NotRecorded(Exception):
    """A record orderlog makes itself that its stream refused or held already: the caller
    checked before asking, so another writer got there in between (OrderLog.record_own)."""


ACCEPTED = Decision(Outcome.ACCEPTED)
DUPLICATE = Decision(Outcome.DUPLICATE)


@dataclass(frozen=True, slots=True)
class KnownFact:
    """A fact the stream holds under its natural key, to judge another one with that key."""

    event_id: str
    version: int
    data: dict[str, Any]


class HistoricalStateError(RuntimeError):
    """A state rebuilt as of an earlier moment is for reading; it never records."""


class StreamAggregate(Aggregate):
    STREAM: ClassVar[str]
    OPENED_BY: ClassVar[frozenset[str]]
    sealer: ClassVar[Sealer] = HashChainSealer()
    by_stream: ClassVar[dict[str, type[StreamAggregate]]] = {}
    """Every stream kind and its aggregate, filled in as each aggregate class is defined."""

    class Event(Aggregate.Event):
        """The event store's envelope around a record: what the library saves and loads."""

        record: Record
        state: bytes
        """The bytes the store keeps: the record's canonical JSON with its hash appended."""

        def mutate(self, aggregate: Any) -> Any:
            return StreamAggregate.by_stream[self.record.stream].fold(aggregate, self.record)

    class Opened(Event, Aggregate.Created):
        pass

    class Recorded(Event):
        pass

    folds: ClassVar[dict[str, Callable[[Any, Record], None]]] = {}
    """Event type -> the method that folds it (`on_<Type>`), found once per aggregate class."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "STREAM" in cls.__dict__:
            StreamAggregate.by_stream[cls.STREAM] = cls
            cls.folds = {name[3:]: method for name, method in vars(cls).items() if name.startswith("on_")}

    def __init__(self, key: str) -> None:
        self.key = key
        self.event_ids: dict[str, int] = {}
        """Every event id the stream holds, with the version that holds it."""
        self.facts_by_key: dict[tuple[str, str], KnownFact] = {}
        """(type, natural key value) -> the fact recorded under it (see EventType.natural_key)."""
        self.last_hash = GENESIS_HASH
        self.last_recorded_at = ""
        self.first_occurred_at = ""
        self.last_occurred_at = ""
        self.historical = False

    @classmethod
    def id_for(cls, key: str) -> UUID:
        return stream_id(cls.STREAM, key)

    # ------------------------------------------------------------ folding records

    @classmethod
    def started(cls, key: str) -> Self:
        """An empty state of the stream `key`, before its first record."""
        state = cls.__new__(cls)
        state.__base_init__(cls.id_for(key), 0, None)  # type: ignore[arg-type]
        state.__init__(key)  # type: ignore[misc]
        return state

    @classmethod
    def fold(cls, state: Self | None, record: Record) -> Self:
        """The state after one more record. The one fold every reader of the log uses."""
        if state is None:
            if record.version != 1:
                raise ValueError(f"{cls.STREAM} {record.key} starts at version 1, not {record.version}")
            state = cls.started(record.key)
        state.evolve(record)
        state._version = record.version
        return state

    @classmethod
    def rebuild(cls, records: Iterable[Record]) -> Self | None:
        """The state made by a stream's records, in version order (None: no records)."""
        state: Self | None = None
        for record in records:
            state = cls.fold(state, record)
        return state

    def evolve(self, record: Record) -> None:
        self.event_ids[record.event_id] = record.version
        key_field = EVENT_TYPES[record.type].natural_key
        if key_field is not None:
            natural = (record.type, record.data[key_field])
            self.facts_by_key[natural] = KnownFact(record.event_id, record.version, record.data)
        self.last_hash = record.hash
        self.last_recorded_at = record.recorded_at
        if not self.first_occurred_at:
            self.first_occurred_at = record.occurred_at
        self.last_occurred_at = max(self.last_occurred_at, record.occurred_at)
        self.folds[record.type](self, record)

    @classmethod
    def replay(cls, records: Iterable[Record], keep: Callable[[Record], bool]) -> Self | None:
        """The state made by the kept records alone, applied in recorded order.

        Used for "as it stood then" questions. The kept records need not be a prefix: with
        event time, a late-arriving fact can precede in time a record recorded before it.
        Returns None when the stream's first record is not kept (it did not exist yet).
        """
        state: Self | None = None
        for record in records:
            if not keep(record):
                continue
            if state is None and record.version != 1:
                return None
            state = cls.fold(state, record)
            state.historical = True
        return state

    # ------------------------------------------------------------ recording

    @classmethod
    def open(cls, upstream: Upstream, recorded_at: str | None = None) -> Self:
        """Starts the stream with its first record."""
        state = cls.started(upstream.key)
        state._append(upstream.type, upstream, upstream.data, recorded_at)
        return state

    def _append(self, event_type: str, upstream: Upstream, data: dict[str, Any], recorded_at: str | None) -> None:
        if self.historical:
            raise HistoricalStateError(f"{self.STREAM} {self.key} was rebuilt as of an earlier moment")
        version = self.version + 1
        fields: dict[str, Any] = {
            "stream": self.STREAM,
            "key": upstream.key,
            "version": version,
            "type": event_type,
            "event_id": upstream.event_id,
            "occurred_at": upstream.occurred_at,
            "recorded_at": max(recorded_at or record_time(), self.last_recorded_at),
            "source": upstream.source,
            "actor": upstream.actor,
            "correlation_id": upstream.correlation_id,
            "data": data,
            "signature": upstream.signature,
            "signed_envelope": upstream.signed_envelope,
            "prev_hash": self.last_hash,
        }
        state, record_hash = self.sealer.seal(fields)
        record = Record(*fields.values(), record_hash)
        # What the library's trigger_event does (construct, mutate, append to pending), with
        # the event built the way the library's own mapper builds one it reads: a frozen
        # dataclass's __init__ costs more than the rest of recording a record.
        event = object.__new__(self.Opened if version == 1 else self.Recorded)
        object.__setattr__(
            event,
            "__dict__",
            {"originator_id": self.id, "originator_version": version, "record": record, "state": state},
        )
        self.fold(self, record)
        self.pending_events.append(event)

    def handle(self, upstream: Upstream, recorded_at: str | None = None) -> Decision:
        """Records a fact once; a stream without lifecycle rules refuses nothing."""
        if upstream.event_id in self.event_ids:
            return DUPLICATE
        known = self.judge_by_natural_key(upstream, recorded_at)
        if known is not None:
            return known
        self._append(upstream.type, upstream, upstream.data, recorded_at)
        return ACCEPTED

    def judge_by_natural_key(self, fact: Upstream, recorded_at: str | None = None) -> Decision | None:
        """A fact whose natural key the stream already holds: the same content is the same
        fact re-sent under a new event id (a duplicate, counted once); other content is a
        conflict between systems, recorded as such with no effect on the figures. None
        when the key is new (or the type has none)."""
        key_field = EVENT_TYPES[fact.type].natural_key
        if key_field is None:
            return None
        key_value = fact.data[key_field]
        earlier = self.facts_by_key.get((fact.type, key_value))
        if earlier is None:
            return None
        said = (
            f"{key_field} {key_value} is already recorded by event {earlier.event_id} "
            f"({self.STREAM} {self.key} version {earlier.version})"
        )
        if earlier.data == fact.data:
            return Decision(Outcome.DUPLICATE, f"{said}: the same {fact.type} under another event id, counted once")
        conflict = {
            "fact_type": fact.type,
            "key_field": key_field,
            "key_value": key_value,
            "earlier_event_id": earlier.event_id,
            "fact_data": canonical_bytes(fact.data).decode(),
        }
        self._append("ConflictRecorded", fact, conflict, recorded_at)
        changed = "; ".join(differences({"data": earlier.data}, {"data": fact.data}))
        return Decision(Outcome.CONFLICT, f"{said} with other content ({changed}): recorded as a conflict, not counted")


def record_time() -> str:
    """Now, to the millisecond, in orderlog's instant form: a record's record time.

    Each stream keeps its record times from decreasing (a record is stamped no earlier
    than the one before it), so "what was known at T" is always a prefix of the stream,
    even if the clock steps back.
    """
    return format_instant(datetime.now(UTC))
