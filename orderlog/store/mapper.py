"""How a record is kept in the store's `state` column, and how it is read back.

A stored state is the record's canonical JSON (exactly the bytes its hash covers) with
the hash appended as a last member:

    <canonical JSON of the record without its hash, minus the final "}">,"hash":"<64 hex>"}

So the state is ordinary JSON, the hash can be recomputed from a slice of it without
re-serialising, and nothing is serialised twice on write. The `topic` column holds
`<stream>/<event type>` (e.g. `order/PaymentCaptured`) rather than a Python class path,
so renaming or moving a class can never make stored events unreadable, and readers can
select events by type in SQL.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent

from orderlog.domain.contract import EVENT_TYPES
from orderlog.domain.record import (
    HASH_SUFFIX_LENGTH,
    Record,
    UnreadableRecord,
    record_from_stored,
    sealed_part,
    stored_bytes,
)

__all__ = ["HASH_SUFFIX_LENGTH", "RecordMapper", "record_of", "sealed_part", "stored_bytes", "topic_of"]
from orderlog.domain.streams import STREAMS


def topic_of(stream: str, event_type: str) -> str:
    return TOPICS.get((stream, event_type)) or f"{stream}/{event_type}"


TOPICS = {(event_type.stream, name): f"{event_type.stream}/{name}" for name, event_type in EVENT_TYPES.items()}


class RecordMapper(Mapper[UUID]):
    """Maps stream events to stored events and back (see the module docstring)."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        record: Record = domain_event.record
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=record.version,
            topic=topic_of(record.stream, record.type),
            state=domain_event.state,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        record = record_of(
            stored_event.originator_id, stored_event.originator_version, stored_event.topic, stored_event.state
        )
        aggregate = STREAMS[record.stream]
        event = object.__new__(aggregate.Opened if record.version == 1 else aggregate.Recorded)
        originator_id = stored_event.originator_id
        object.__setattr__(
            event,
            "__dict__",
            {
                "originator_id": originator_id if isinstance(originator_id, UUID) else UUID(originator_id),
                "originator_version": record.version,
                "record": record,
                "state": stored_event.state,
            },
        )
        return event


def record_of(originator_id: Any, version: int, topic: str, state: bytes) -> Record:
    """The record a stored row holds, checked to be stored where it says it belongs."""
    stream = topic.partition("/")[0]
    try:
        record = record_from_stored(state)
    except UnreadableRecord as error:
        raise MapperDeserialisationError(
            f"stored event {originator_id} version {version} is unreadable ({error}): run `orderlog audit verify`"
        ) from None
    if record.stream != stream or record.version != version or stream not in STREAMS:
        raise MapperDeserialisationError(
            f"stored event {originator_id} version {version} says it is {record.stream} version {record.version}: "
            "run `orderlog audit verify`"
        )
    return record
