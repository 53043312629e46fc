"""Streams: aggregates whose every event is one record of something that happened.

An order, a SKU's stock counts, a customer's erasures and a source's keys are each a
stream. Every event of a stream is a *record*: the upstream envelope (event id, type,
event time, source, actor, correlation id, data, signature) plus what orderlog adds on
writing it (version, record time, the hash of the previous record, its own hash).

The record is built and sealed here, once: its RFC 8785 canonical JSON is hashed, and
those same bytes are what the store keeps (see orderlog.store.mapper). Idempotency is a
property of the stream: an event id it already holds is a duplicate, never a second
record.
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

from orderlog.audit_verify import GENESIS_HASH, canonical_json_unchecked
from orderlog.domain.contract import EVENT_TYPES
from orderlog.domain.envelope import Upstream
from orderlog.domain.instants import format_instant

STREAM_NAMESPACE = UUID("0b6f3c36-5f2c-5c8e-9d5a-6f72646572c0")


@lru_cache(maxsize=1 << 17)
def stream_id(stream: str, key: str) -> UUID:
    """The store's id of a stream: derived, so that upstream ids need no lookup table."""
    return uuid5(STREAM_NAMESPACE, f"{stream}/{key}")


class Sealer(Protocol):
    def seal(self, record: dict[str, Any]) -> tuple[bytes, str]:
        """The bytes to store for `record` and the hash they carry."""


class HashChainSealer:
    """Canonical JSON and its SHA-256: what every record carries (audit_verify.record_hash)."""

    def seal(self, record: dict[str, Any]) -> tuple[bytes, str]:
        body = canonical_json_unchecked(record)
        return body, hashlib.sha256(body).hexdigest()


class UnsealedRecords:
    """No canonical form and no hash. Only `make bench` uses it, to price tamper evidence."""

    def seal(self, record: dict[str, Any]) -> tuple[bytes, str]:
        return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode(), GENESIS_HASH


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    reason: str = ""


ACCEPTED = Decision(Outcome.ACCEPTED)
DUPLICATE = Decision(Outcome.DUPLICATE)


class HistoricalStateError(RuntimeError):
    """A state rebuilt as of an earlier moment is for reading; it never records."""


class StreamAggregate(Aggregate):
    STREAM: ClassVar[str]
    OPENED_BY: ClassVar[frozenset[str]]
    sealer: ClassVar[Sealer] = HashChainSealer()

    class Event(Aggregate.Event):
        key: str
        type: str
        event_id: str
        occurred_at: str
        recorded_at: str
        source: str
        actor: str | None
        correlation_id: str | None
        data: dict[str, Any]
        signature: str | None
        signed_envelope: str | None
        prev_hash: str
        hash: str
        sealed: bytes

        def apply(self, aggregate: StreamAggregate) -> None:
            aggregate.evolve(self)

        def record(self) -> dict[str, Any]:
            """The record as stored and hashed, with its hash: what history and proofs show."""
            return {
                "stream": EVENT_TYPES[self.type].stream,
                "key": self.key,
                "version": self.originator_version,
                "type": self.type,
                "event_id": self.event_id,
                "occurred_at": self.occurred_at,
                "recorded_at": self.recorded_at,
                "source": self.source,
                "actor": self.actor,
                "correlation_id": self.correlation_id,
                "data": self.data,
                "signature": self.signature,
                "signed_envelope": self.signed_envelope,
                "prev_hash": self.prev_hash,
                "hash": self.hash,
            }

    class Opened(Event, Aggregate.Created):
        pass

    class Recorded(Event):
        pass

    def __init__(self, key: str) -> None:
        self.key = key
        self.event_ids: set[str] = set()
        self.last_hash = GENESIS_HASH
        self.last_recorded_at = ""
        self.first_occurred_at = ""
        self.last_occurred_at = ""
        self.historical = False

    @classmethod
    def id_for(cls, key: str) -> UUID:
        return stream_id(cls.STREAM, key)

    # ------------------------------------------------------------ recording

    @classmethod
    def open(cls, upstream: Upstream) -> Self:
        """Starts the stream with its first record."""
        recorded, recorded_at = _record_time("")
        fields = cls._sealed_fields(
            event_type=upstream.type,
            upstream=upstream,
            data=upstream.data,
            version=1,
            prev_hash=GENESIS_HASH,
            recorded_at=recorded_at,
        )
        return cls._create(cls.Opened, id=cls.id_for(upstream.key), timestamp=recorded, **fields)

    def _append(self, event_type: str, upstream: Upstream, data: dict[str, Any]) -> None:
        if self.historical:
            raise HistoricalStateError(f"{self.STREAM} {self.key} was rebuilt as of an earlier moment")
        recorded, recorded_at = _record_time(self.last_recorded_at)
        fields = self._sealed_fields(
            event_type=event_type,
            upstream=upstream,
            data=data,
            version=self.version + 1,
            prev_hash=self.last_hash,
            recorded_at=recorded_at,
        )
        # What the library's trigger_event does (construct, mutate, append to pending), with
        # the event built the way the library's own mapper builds one it reads: a frozen
        # dataclass's __init__ costs more than the rest of recording a record.
        event = object.__new__(self.Recorded)
        object.__setattr__(
            event,
            "__dict__",
            {"originator_id": self.id, "originator_version": self.version + 1, "timestamp": recorded, **fields},
        )
        event.mutate(self)
        self.pending_events.append(event)

    @classmethod
    def _sealed_fields(
        cls,
        *,
        event_type: str,
        upstream: Upstream,
        data: dict[str, Any],
        version: int,
        prev_hash: str,
        recorded_at: str,
    ) -> dict[str, Any]:
        record = {
            "stream": cls.STREAM,
            "key": upstream.key,
            "version": version,
            "type": event_type,
            "event_id": upstream.event_id,
            "occurred_at": upstream.occurred_at,
            "recorded_at": recorded_at,
            "source": upstream.source,
            "actor": upstream.actor,
            "correlation_id": upstream.correlation_id,
            "data": data,
            "signature": upstream.signature,
            "signed_envelope": upstream.signed_envelope,
            "prev_hash": prev_hash,
        }
        sealed, record_hash = cls.sealer.seal(record)
        del record["stream"], record["version"]
        record["hash"] = record_hash
        record["sealed"] = sealed
        return record

    def handle(self, upstream: Upstream) -> Decision:
        """Records a fact once; a stream without lifecycle rules refuses nothing."""
        if upstream.event_id in self.event_ids:
            return DUPLICATE
        self._append(upstream.type, upstream, upstream.data)
        return ACCEPTED

    # ------------------------------------------------------------ evolving

    def evolve(self, event: StreamAggregate.Event) -> None:
        self.event_ids.add(event.event_id)
        self.last_hash = event.hash
        self.last_recorded_at = event.recorded_at
        if not self.first_occurred_at:
            self.first_occurred_at = event.occurred_at
        self.last_occurred_at = max(self.last_occurred_at, event.occurred_at)
        getattr(self, f"on_{event.type}")(event)

    @classmethod
    def replay(
        cls, events: Iterable[StreamAggregate.Event], keep: Callable[[StreamAggregate.Event], bool]
    ) -> Self | None:
        """The state made by the kept events alone, applied in recorded order.

        Used for "as it stood then" questions. The kept events need not be a prefix: with
        event time, a late-arriving fact can precede in time an event recorded before it.
        Returns None when the stream's first record is not kept (it did not exist yet).
        """
        state: Self | None = None
        for event in events:
            if not keep(event):
                continue
            if state is None:
                if event.originator_version != 1:
                    return None
                state = event.mutate(None)
                state.historical = True
                continue
            event.apply(state)
            state.version = event.originator_version
            state.modified_on = event.timestamp
        return state


def _record_time(not_before: str) -> tuple[datetime, str]:
    """Now, to the millisecond, and never earlier than the stream's last record time.

    Record times never decrease within a stream, so "what was known at T" is always a
    prefix of the stream, even if the clock steps back.
    """
    now = datetime.now(UTC)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)
    text = _LAST_STAMP[1] if now == _LAST_STAMP[0] else format_instant(now)
    _LAST_STAMP[:] = [now, text]
    if text < not_before:
        return datetime.fromisoformat(not_before), not_before
    return now, text


_LAST_STAMP: list[Any] = [None, ""]
"""The last record time and its text: many records share a millisecond."""
