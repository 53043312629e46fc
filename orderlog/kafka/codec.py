"""Messages on orderlog's topics: the Confluent wire format, and records in and out of it.

A message on `orderlog.events` is one stored record:
- key: the stream key (the order id; the SKU of a stock count), so that every record of a
  stream lands on one partition, in store order;
- value: magic byte 0, the 4-byte schema id (big-endian), the Avro body (schemas/), which
  any Confluent-compatible deserializer reads;
- headers: `type`, `event_id`, `stream`, `version` and `position` (the store position),
  so that consumers can route without decoding, and the relay can find where it stopped.

A record read back from a message is equal to the one read from the store (same fields,
same hash), so `record_hash` recomputed from it matches: a consumer needs no plaintext and
no trust in the relay.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import fastavro

from orderlog.avro import record_from_datum
from orderlog.avro_writer import Writer, writer_for
from orderlog.domain.record import Record
from orderlog.kafka.registry import SchemaIds

MAGIC = 0
HEADER = struct.Struct(">bI")
POSITION_HEADER = "position"


class NotWireFormat(ValueError):
    """A value that is not in the Confluent wire format (magic byte 0 and a schema id)."""


def frame(schema_id: int, body: bytes) -> bytes:
    return HEADER.pack(MAGIC, schema_id) + body


def unframe(value: bytes) -> tuple[int, memoryview]:
    """(schema id, Avro body) of a wire-format value."""
    if len(value) < HEADER.size or value[0] != MAGIC:
        raise NotWireFormat("not in the Confluent wire format (magic byte 0, then a 4-byte schema id)")
    _magic, schema_id = HEADER.unpack_from(value)
    return schema_id, memoryview(value)[HEADER.size :]


def record_message(record: Record, position: int, ids: SchemaIds) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) of the message carrying a stored record."""
    schema_id = ids.id_of(record.type)
    write = _WRITERS.get(schema_id)
    if write is None:
        write = _WRITERS[schema_id] = writer_for(ids.by_id(schema_id).schema)
    headers = [
        ("type", record.type.encode()),
        ("event_id", record.event_id.encode()),
        ("stream", record.stream.encode()),
        ("version", str(record.version).encode()),
        (POSITION_HEADER, str(position).encode()),
    ]
    return record.key.encode(), HEADER.pack(MAGIC, schema_id) + write(record), headers


_WRITERS: dict[int, Writer] = {}
"""Each schema's writer, by schema id (an id names one schema for good, in a registry and locally)."""


def record_from_message(value: bytes, ids: SchemaIds, readers: dict[str, Any] | None = None) -> Record:
    """The record a message on `orderlog.events` carries, read with the current schema of
    its type whatever version it was written with."""
    schema_id, body = unframe(value)
    writer = ids.by_id(schema_id)
    reader = (readers or {}).get(writer.name) or ids.by_id(ids.id_of(writer.name)).parsed
    datum = fastavro.schemaless_reader(io.BytesIO(body), writer.parsed, reader)
    return record_from_datum(datum)  # type: ignore[arg-type]


def header(headers: list[tuple[str, bytes]] | None, name: str) -> str | None:
    for key, value in headers or ():
        if key == name and value is not None:
            return value.decode("utf-8", "replace")
    return None
