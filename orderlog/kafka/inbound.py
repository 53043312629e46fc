"""What arrives on `orderlog.inbound`: a JSON envelope as in the contract, or the same
envelope in Avro (Confluent wire format, one of the `<Type>Envelope` schemas in schemas/).

Both become the same JSON text, which then takes exactly the path `orderlog publish`
takes (orderlog.intake): one hardened reader for every source. Optional members that are
null in Avro are left out of the JSON, as a JSON sender would leave them out, so that a
source signs the same canonical form whichever encoding it sends.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import fastavro
import orjson

from orderlog.config import Config
from orderlog.domain.envelope import stream_key_of
from orderlog.kafka import KafkaError
from orderlog.kafka.clients import Message, Sender
from orderlog.kafka.codec import NotWireFormat, unframe
from orderlog.kafka.registry import SchemaIds

ENVELOPE_SUFFIX = "Envelope"


class UnreadableMessage(ValueError):
    """A message that is neither a JSON envelope nor an Avro one orderlog can read."""


def envelope_text(value: bytes | None, ids: SchemaIds) -> bytes:
    """The JSON text of an inbound message's envelope; UnreadableMessage saying why not."""
    if value is None:
        raise UnreadableMessage("the message has no value (a tombstone): there is no envelope to read")
    if not value.startswith(b"\x00"):
        return value
    try:
        schema_id, body = unframe(value)
        writer = ids.by_id(schema_id)
    except (NotWireFormat, KafkaError) as error:
        raise UnreadableMessage(str(error)) from None
    if not writer.name.endswith(ENVELOPE_SUFFIX):
        raise UnreadableMessage(f"schema id {schema_id} is {writer.name}, not an upstream envelope schema")
    reader = ids.by_id(ids.id_of(writer.name)).parsed
    try:
        datum = fastavro.schemaless_reader(io.BytesIO(body), writer.parsed, reader)
    except Exception as error:  # fastavro raises many kinds for a body that does not match its schema
        raise UnreadableMessage(f"the Avro body does not match schema {writer.name}: {type(error).__name__}") from None
    return orjson.dumps(_without_nulls(datum))


def _without_nulls(value: object) -> object:
    if isinstance(value, dict):
        return {name: _without_nulls(item) for name, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


def send_lines(config: Config, lines: Iterable[bytes]) -> int:
    """Sends JSON lines to the inbound topic as an upstream service would: as they are (a bad
    one becomes a dead letter there), each keyed by its order id (or sku) when it names one."""

    def message(line: bytes) -> Message:
        key = stream_key_of(line)
        return (key.encode() if key else None), line, []

    return Sender(config, config.topic("inbound")).send(map(message, lines), what="lines")
