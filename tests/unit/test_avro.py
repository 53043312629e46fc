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
    record = data.draw(stored_record(type_name))
    _sealed, digest = HashChainSealer().seal(record)
    stored = Record(**record, hash=digest)
    decoded = avro.decode(avro.encode(stored), type_name)
    assert decoded == stored
    assert record_hash(decoded.as_dict()) == digest  # a Kafka consumer can check the hash from Avro alone


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
