"""Avro: one schema per event type, derived from the contract, kept as versioned files.

`schemas/<Type>.v<N>.avsc` holds every version of the stored record of each event type:
the envelope, orderlog's fields (version, record time, hashes) and the data as stored
(personal parts sealed). Money is `long` (minor units), times are `timestamp-millis`,
codes are strings (so that adding a reason code never breaks an older reader). A record
decoded from Avro is exactly the stored record, so its hash can be recomputed by any
consumer (orderlog.audit_verify.record_hash).

Schemas are never edited: when a declaration changes, `make schemas` writes the next
version beside the old ones, and the tests check that each latest version reads data
written with every earlier one (fastavro's schema resolution).
"""

from __future__ import annotations

import io
import json
import types
import typing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
from pydantic import BaseModel

from orderlog.avro_writer import writer_for
from orderlog.domain.contract import EVENT_TYPES, UPSTREAM_TYPES, EventType
from orderlog.domain.envelope import ENVELOPES
from orderlog.domain.instants import format_instant
from orderlog.domain.record import Record

NAMESPACE = "orderlog.events"
ENVELOPE_NAMESPACE = "orderlog.inbound"
SCHEMA_DIRECTORY = Path(__file__).parent / "schemas"
"""The top-level schemas/ (linked into the package, so that an installed wheel carries them)."""
TIME_FIELDS = ("occurred_at", "recorded_at")
OPTIONAL_STRING = ["null", "string"]


def schema_for(event_type: EventType) -> dict[str, Any]:
    """The Avro schema of a stored record of this event type."""
    defined: set[str] = set()
    return {
        "type": "record",
        "name": event_type.name,
        "namespace": NAMESPACE,
        "doc": f"A stored {event_type.name} record ({event_type.kind.value}, {event_type.stream} stream).",
        "fields": [
            {"name": "stream", "type": "string"},
            {"name": "key", "type": "string", "doc": f"the {event_type.key_field} (the Kafka message key)"},
            {"name": "version", "type": "long"},
            {"name": "type", "type": "string"},
            {"name": "event_id", "type": "string"},
            {
                "name": "occurred_at",
                "type": {"type": "long", "logicalType": "timestamp-millis"},
                "doc": "event time",
            },
            {
                "name": "recorded_at",
                "type": {"type": "long", "logicalType": "timestamp-millis"},
                "doc": "record time",
            },
            {"name": "source", "type": "string"},
            {"name": "actor", "type": OPTIONAL_STRING, "default": None},
            {"name": "correlation_id", "type": OPTIONAL_STRING, "default": None},
            {"name": "data", "type": _record(event_type.stored_data, f"{event_type.name}Data", defined)},
            {"name": "signature", "type": OPTIONAL_STRING, "default": None},
            {"name": "signed_envelope", "type": OPTIONAL_STRING, "default": None},
            {"name": "prev_hash", "type": "string"},
            {"name": "hash", "type": "string"},
        ],
    }


def envelope_schema_for(event_type: EventType) -> dict[str, Any]:
    """The Avro schema of an upstream envelope of this type, for producers that send Avro to
    `orderlog.inbound` instead of JSON: the contract's fields with the JSON's own types
    (times as strings, exactly as upstream wrote them, so that a signature over the JSON
    form still verifies)."""
    defined: set[str] = set()
    fields = []
    for field_name, field in ENVELOPES[event_type.name].model_fields.items():
        if field_name == "data":
            kind = _record(event_type.data, f"{event_type.name}EnvelopeData", defined)
        else:
            kind = _type(field.annotation, defined)
        entry: dict[str, Any] = {"name": field_name, "type": kind}
        if isinstance(kind, list) and "null" in kind:
            entry["default"] = None
        fields.append(entry)
    return {
        "type": "record",
        "name": f"{event_type.name}Envelope",
        "namespace": ENVELOPE_NAMESPACE,
        "doc": f"An upstream {event_type.name} envelope, as sent to the inbound topic.",
        "fields": fields,
    }


def declared_schemas() -> dict[str, dict[str, Any]]:
    """Every schema the contract declares, by file name stem: stored records (`PaymentCaptured`)
    and upstream envelopes (`PaymentCapturedEnvelope`)."""
    schemas = {name: schema_for(event_type) for name, event_type in EVENT_TYPES.items()}
    schemas |= {f"{name}Envelope": envelope_schema_for(EVENT_TYPES[name]) for name in UPSTREAM_TYPES}
    return schemas


def _record(model: type[BaseModel], name: str, defined: set[str]) -> Any:
    if name in defined:
        return name
    defined.add(name)
    fields = []
    for field_name, field in model.model_fields.items():
        entry: dict[str, Any] = {"name": field_name, "type": _type(field.annotation, defined)}
        if isinstance(entry["type"], list) and "null" in entry["type"]:
            entry["default"] = None
        fields.append(entry)
    return {"type": "record", "name": name, "fields": fields}


def _type(annotation: Any, defined: set[str]) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _type(typing.get_args(annotation)[0], defined)
    if origin is typing.Literal:
        return "string"
    if origin in (typing.Union, types.UnionType):
        members = [_type(a, defined) for a in typing.get_args(annotation) if a is not type(None)]
        return ["null", *members]
    if origin is list:
        return {"type": "array", "items": _type(typing.get_args(annotation)[0], defined)}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _record(annotation, annotation.__name__, defined)
    scalars = {str: "string", int: "long", bool: "boolean"}
    if annotation in scalars:
        return scalars[annotation]
    raise TypeError(f"no Avro type for {annotation!r}")


# ---------------------------------------------------------------- the codec


def record_from_datum(datum: dict[str, Any]) -> Record:
    """The record an Avro datum carries: equal to the one read from the store."""
    fields = dict(datum)
    for name in TIME_FIELDS:
        fields[name] = format_instant(fields[name])
    return Record(**fields)


_PARSED: dict[str, Any] = {}


def parsed_schema(type_name: str) -> Any:
    if type_name not in _PARSED:
        _PARSED[type_name] = fastavro.parse_schema(schema_for(EVENT_TYPES[type_name]))
    return _PARSED[type_name]


def encode(record: Record) -> bytes:
    """The Avro body of a record (no framing; the Kafka layer adds the wire format)."""
    if record.type not in _WRITERS:
        _WRITERS[record.type] = writer_for(schema_for(EVENT_TYPES[record.type]))
    return _WRITERS[record.type](record)


_WRITERS: dict[str, Any] = {}


def decode(body: bytes, type_name: str, writer_schema: dict[str, Any] | None = None) -> Record:
    """A record from an Avro body written with `writer_schema` (default: the current one)."""
    reader = parsed_schema(type_name)
    writer = fastavro.parse_schema(writer_schema) if writer_schema else reader
    return record_from_datum(fastavro.schemaless_reader(io.BytesIO(body), writer, reader))  # type: ignore[arg-type]


# ---------------------------------------------------------------- the files


def schema_files(type_name: str, directory: Path = SCHEMA_DIRECTORY) -> list[Path]:
    """Every version's file of one type, oldest first."""
    return sorted(directory.glob(f"{type_name}.v*.avsc"), key=lambda p: int(p.name.split(".v")[1].split(".")[0]))


def check_schemas(directory: Path = SCHEMA_DIRECTORY) -> list[str]:
    """What differs between the declarations and the schema files (empty: all current)."""
    problems = []
    for name, schema in declared_schemas().items():
        files = schema_files(name, directory)
        if not files:
            problems.append(f"{name}: no schema file; run `make schemas`")
        elif json.loads(files[-1].read_text(encoding="utf-8")) != schema:
            problems.append(f"{name}: declaration differs from {files[-1].name}; run `make schemas`")
    return problems


def write_schemas(directory: Path = SCHEMA_DIRECTORY) -> list[Path]:
    """Writes the next version of every schema whose declaration changed; never rewrites one."""
    written = []
    for name, schema in declared_schemas().items():
        files = schema_files(name, directory)
        if files and json.loads(files[-1].read_text(encoding="utf-8")) == schema:
            continue
        path = directory / f"{name}.v{len(files) + 1}.avsc"
        path.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


def check_compatibility(directory: Path = SCHEMA_DIRECTORY) -> list[str]:
    """Can the latest version of each schema read data written with every earlier one?"""
    problems = []
    for name in declared_schemas():
        files = schema_files(name, directory)
        if len(files) < 2:
            continue
        latest = fastavro.parse_schema(json.loads(files[-1].read_text(encoding="utf-8")))
        for older_file in files[:-1]:
            older = fastavro.parse_schema(json.loads(older_file.read_text(encoding="utf-8")))
            buffer = io.BytesIO()
            fastavro.schemaless_writer(buffer, older, sample_datum(older))
            buffer.seek(0)
            try:
                fastavro.schemaless_reader(buffer, older, latest)
            except Exception as error:  # fastavro raises several kinds for a mismatch
                problems.append(f"{files[-1].name} cannot read data written with {older_file.name}: {error}")
    return problems


def sample_datum(schema: Any) -> Any:
    """A value of every field, for checking that old data stays readable."""
    if isinstance(schema, list):
        return sample_datum(next(member for member in schema if member != "null"))
    if isinstance(schema, str):
        return {"string": "x", "long": 1, "int": 1, "boolean": True, "null": None}[schema]
    kind = schema["type"]
    if kind == "record":
        return {field["name"]: sample_datum(field["type"]) for field in schema["fields"]}
    if kind == "array":
        return [sample_datum(schema["items"])]
    if schema.get("logicalType") == "timestamp-millis":
        return datetime(2026, 3, 1, tzinfo=UTC)
    return sample_datum(kind)
