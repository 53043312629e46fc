"""The record: what a stored event is, whichever way it arrives.

A record is the upstream envelope (event id, type, event time, source, actor, correlation
id, data, signature) plus what orderlog added on writing it (stream, key, version, record
time, the previous record's hash, its own hash). Everything that reads the log folds
records: the aggregates on the write side, `order show --as-of`, the verifier, and the
projectors, whether they read the store or the Kafka topic. One function builds a record
from each source (stored bytes here; an Avro datum in orderlog.avro; a Kafka message in
orderlog.kafka), and a record built either way compares equal, so views built from the
store and from Kafka are the same by construction, not by care.

A NamedTuple: immutable, compared by value, and the cheapest record Python builds (a
million of them are built in a replay).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson


class Record(NamedTuple):
    stream: str
    key: str
    version: int
    type: str
    event_id: str
    occurred_at: str
    """Event time: when it happened, as upstream says (UTC, milliseconds)."""
    recorded_at: str
    """Record time: when orderlog recorded it (never decreasing within a stream)."""
    source: str
    actor: str | None
    correlation_id: str | None
    data: dict[str, Any]
    signature: str | None
    signed_envelope: str | None
    prev_hash: str
    hash: str

    @property
    def originator_version(self) -> int:
        """The version under the event store's name for it (what moments compare)."""
        return self.version

    def as_dict(self) -> dict[str, Any]:
        """Every field by name: what history shows, what Avro carries, what is hashed."""
        return self._asdict()


FIELDS = Record._fields

HASH_MEMBER = b',"hash":"'
HASH_SUFFIX_LENGTH = len(HASH_MEMBER) + 64 + len(b'"}')


def stored_bytes(sealed: bytes, record_hash: str) -> bytes:
    """How a record is kept: its canonical JSON (exactly the bytes its hash covers) with the
    hash appended as a last member, `...,"hash":"<64 hex>"}`. So the stored form is
    ordinary JSON, the hash can be recomputed from a slice of it without re-serialising,
    and nothing is serialised twice on write."""
    return b"".join((sealed[:-1], HASH_MEMBER, record_hash.encode(), b'"}'))


def sealed_part(state: bytes) -> bytes:
    """The bytes a stored record's hash covers."""
    return state[:-HASH_SUFFIX_LENGTH] + b"}"


class UnreadableRecord(ValueError):
    """Stored bytes that are not a record as orderlog writes them."""


def record_from_stored(state: bytes) -> Record:
    """A record from the bytes the store keeps (canonical JSON with its hash last)."""
    try:
        fields = orjson.loads(state)
        return Record(**fields)
    except (orjson.JSONDecodeError, TypeError) as error:
        raise UnreadableRecord(f"not a stored record ({error})") from None
