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

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent
from eventsourcing.utils import get_topic

from orderlog.domain.contract import EVENT_TYPES
from orderlog.domain.stream import StreamAggregate
from orderlog.domain.streams import STREAMS

HASH_MEMBER = b',"hash":"'
HASH_SUFFIX_LENGTH = len(HASH_MEMBER) + 64 + len(b'"}')


def stored_state(sealed: bytes, record_hash: str) -> bytes:
    return sealed[:-1] + HASH_MEMBER + record_hash.encode() + b'"}'


def sealed_part(state: bytes) -> bytes:
    """The bytes a stored state's hash covers."""
    return state[:-HASH_SUFFIX_LENGTH] + b"}"


def topic_of(stream: str, event_type: str) -> str:
    return f"{stream}/{event_type}"


_OPENED_TOPICS = {name: get_topic(cls) for name, cls in STREAMS.items()}


class RecordMapper(Mapper[UUID]):
    """Maps stream events to stored events and back (see the module docstring)."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        event: StreamAggregate.Event = domain_event
        return StoredEvent(
            originator_id=event.originator_id,
            originator_version=event.originator_version,
            topic=topic_of(EVENT_TYPES[event.type].stream, event.type),
            state=stored_state(event.sealed, event.hash),
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        stream = stored_event.topic.partition("/")[0]
        try:
            aggregate = STREAMS[stream]
            fields: dict[str, Any] = json.loads(stored_event.state)
            recorded_stream, version = fields.pop("stream"), fields.pop("version")
        except (KeyError, ValueError, TypeError) as error:
            raise MapperDeserialisationError(
                f"stored event {stored_event.originator_id} version {stored_event.originator_version} "
                f"is unreadable ({error!r}): run `orderlog audit verify`"
            ) from None
        if recorded_stream != stream or version != stored_event.originator_version:
            raise MapperDeserialisationError(
                f"stored event {stored_event.originator_id} version {stored_event.originator_version} "
                f"says it is {recorded_stream} version {version}: run `orderlog audit verify`"
            )
        originator_id = stored_event.originator_id
        fields["originator_id"] = originator_id if isinstance(originator_id, UUID) else UUID(originator_id)
        fields["originator_version"] = version
        fields["timestamp"] = datetime.fromisoformat(fields["recorded_at"])
        fields["sealed"] = sealed_part(stored_event.state)
        if version == 1:
            event_class: type = aggregate.Opened
            fields["originator_topic"] = _OPENED_TOPICS[stream]
        else:
            event_class = aggregate.Recorded
        event = object.__new__(event_class)
        object.__setattr__(event, "__dict__", fields)
        return event
