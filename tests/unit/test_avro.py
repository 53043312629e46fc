"""Avro schemas: current with the declarations, exact round trips, old data stays readable."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderlog import avro
from orderlog.audit_verify import record_hash
from orderlog.avro_writer import NotCompiled, compiled_writer, fastavro_writer, long_bytes, millis, writer_for
from orderlog.domain.contract import EVENT_TYPES, UPSTREAM_TYPES
from orderlog.domain.record import Record
from orderlog.domain.stream import HashChainSealer
from tests.strategies import stored_record


def test_every_event_type_has_one_current_schema_file() -> None:
    assert avro.check_schemas() == []
    stems = {p.name.split(".v")[0] for p in avro.SCHEMA_DIRECTORY.glob("*.avsc")}
    assert stems == set(EVENT_TYPES) | {f"{name}Envelope" for name in UPSTREAM_TYPES}


def test_money_is_long_and_times_are_timestamp_millis() -> None:
    schema = avro.schema_for(EVENT_TYPES["PaymentCaptured"])
    fields = {f["name"]: f["type"] for f in schema["fields"]}
    assert fields["occurred_at"] == fields["recorded_at"] == {"type": "long", "logicalType": "timestamp-millis"}
    data = {f["name"]: f["type"] for f in fields["data"]["fields"]}
    assert data["amount"] == "long"


@pytest.mark.parametrize("type_name", sorted(EVENT_TYPES))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_type_round_trips_exactly_and_keeps_its_hash(type_name: str, data: st.DataObject) -> None:
    stored = sealed(data.draw(stored_record(type_name)))
    decoded = avro.decode(avro.encode(stored), type_name)
    assert decoded == stored
    assert record_hash(decoded.as_dict()) == stored.hash  # a Kafka consumer can check the hash from Avro alone


def sealed(record: dict[str, Any]) -> Record:
    _sealed, digest = HashChainSealer().seal(record)
    return Record(**record, hash=digest)


@pytest.mark.parametrize("type_name", sorted(EVENT_TYPES))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_the_compiled_writer_writes_the_bytes_fastavro_writes(type_name: str, data: st.DataObject) -> None:
    stored = sealed(data.draw(stored_record(type_name)))
    schema = avro.schema_for(EVENT_TYPES[type_name])
    assert compiled_writer(schema)(stored) == fastavro_writer(schema)(stored)


def test_a_schema_the_compiler_does_not_know_is_written_by_fastavro() -> None:
    schema = avro.schema_for(EVENT_TYPES["PaymentCaptured"])
    data_fields = schema["fields"][10]["type"]["fields"]
    data_fields.append({"name": "note", "type": ["null", "string", "long"], "default": None})
    with pytest.raises(NotCompiled, match="union"):
        compiled_writer(schema)
    writer = writer_for(schema)
    assert not hasattr(writer, "source")
    assert every_type_compiles() == sorted(EVENT_TYPES)


def payment(**data: Any) -> Record:
    values = {
        "stream": "order", "key": "SO-1", "version": 2, "type": "PaymentCaptured", "event_id": "e-1",
        "occurred_at": "2026-03-01T10:00:00.000Z", "recorded_at": "2026-03-01T10:00:01.000Z", "source": "pay",
        "actor": None, "correlation_id": None, "signature": None, "signed_envelope": None,
        "prev_hash": "0" * 64, "hash": "1" * 64,
    }  # fmt: skip
    return Record(**values, data={"payment_id": "P-1", "amount": 100, "method": "card", **data})


def with_data_fields(*fields: dict[str, Any]) -> dict[str, Any]:
    schema = avro.schema_for(EVENT_TYPES["PaymentCaptured"])
    schema["fields"][10]["type"]["fields"].extend(fields)
    return schema


@pytest.mark.parametrize(
    ("fields", "data"),
    [
        ([{"name": "gift", "type": "boolean", "default": False}], {}),  # left out: its default
        ([{"name": "note", "type": "string", "default": "none"}], {}),
        ([{"name": "count", "type": "long", "default": 7}], {"count": 5.9}),  # a float: cut, as fastavro does
        ([{"name": "count", "type": "long", "default": 7}], {"count": -2.7}),
        ([{"name": "tags", "type": {"type": "array", "items": "string"}}], {"tags": "ab"}),  # any sequence
    ],
)
def test_the_compiled_writer_writes_what_fastavro_writes_off_the_beaten_path(
    fields: list[dict[str, Any]], data: dict[str, Any]
) -> None:
    schema = with_data_fields(*fields)
    assert compiled_writer(schema)(payment(**data)) == fastavro_writer(schema)(payment(**data))


@pytest.mark.parametrize(
    ("fields", "data"),
    [
        ([{"name": "tags", "type": {"type": "array", "items": "string"}}], {"tags": None}),
        ([{"name": "count", "type": "long"}], {"count": "5"}),
        ([{"name": "count", "type": "long"}], {"count": None}),
        ([{"name": "note", "type": "string"}], {"note": None}),
        ([{"name": "note", "type": "string"}], {}),
    ],
)
def test_what_fastavro_refuses_the_compiled_writer_refuses(fields: list[dict[str, Any]], data: dict[str, Any]) -> None:
    schema = with_data_fields(*fields)
    for write in (compiled_writer(schema), fastavro_writer(schema)):
        with pytest.raises((TypeError, KeyError, AttributeError, ValueError)):
            write(payment(**data))


def test_times_before_1970_are_rounded_to_their_millisecond() -> None:
    assert millis("1969-12-31T23:59:59.999+00:00") == -1
    assert millis("1970-01-01T00:00:00.001Z") == 1


def every_type_compiles() -> list[str]:
    return sorted(name for name, kind in EVENT_TYPES.items() if hasattr(writer_for(avro.schema_for(kind)), "source"))


@pytest.mark.parametrize("number", [0, -1, 1, 63, -64, 64, 1023, -1024, 1024, 2**31, -(2**63), 2**63 - 1])
def test_longs_are_written_as_avro_writes_them(number: int) -> None:
    import io

    import fastavro

    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, "long", number)
    assert long_bytes(number) == buffer.getvalue()


def test_every_schema_reads_data_written_with_each_earlier_version() -> None:
    assert avro.check_compatibility() == []


def _evolve(directory: Path, type_name: str, change: Any) -> None:
    latest = json.loads(avro.schema_files(type_name, directory)[-1].read_text())
    change(latest["fields"][10]["type"]["fields"])  # the data record's fields
    (directory / f"{type_name}.v2.avsc").write_text(json.dumps(latest))


def test_compatibility_check_accepts_a_new_optional_field_and_catches_a_required_one(tmp_path: Path) -> None:
    shutil.copytree(avro.SCHEMA_DIRECTORY, tmp_path, dirs_exist_ok=True)
    _evolve(
        tmp_path,
        "PaymentCaptured",
        lambda f: f.append({"name": "fee", "type": ["null", "long"], "default": None}),
    )
    assert avro.check_compatibility(tmp_path) == []
    _evolve(tmp_path, "RefundIssued", lambda f: f.append({"name": "approved_by", "type": "string"}))
    (problem,) = avro.check_compatibility(tmp_path)
    assert problem.startswith("RefundIssued.v2.avsc cannot read data written with RefundIssued.v1.avsc")


def test_a_changed_declaration_gets_a_new_version_never_an_edit(tmp_path: Path) -> None:
    shutil.copytree(avro.SCHEMA_DIRECTORY, tmp_path, dirs_exist_ok=True)
    original = (tmp_path / "StockCounted.v1.avsc").read_text()
    (tmp_path / "StockCounted.v1.avsc").write_text(original.replace('"on_hand"', '"on_hand_old"'))
    assert avro.check_schemas(tmp_path) == [
        "StockCounted: declaration differs from StockCounted.v1.avsc; run `make schemas`"
    ]
    assert [p.name for p in avro.write_schemas(tmp_path)] == ["StockCounted.v2.avsc"]
    assert avro.check_schemas(tmp_path) == []
