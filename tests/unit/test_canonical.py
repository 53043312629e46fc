"""The fast canonical form used on write is exactly RFC 8785 (JCS) for every event type."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from orderlog.audit_verify import canonical_json, canonical_json_unchecked, record_hash
from orderlog.domain.canonical import canonical_bytes
from orderlog.domain.contract import EVENT_TYPES
from orderlog.domain.record import sealed_part, stored_bytes
from orderlog.domain.stream import HashChainSealer
from tests.strategies import stored_record


@pytest.mark.parametrize("type_name", sorted(EVENT_TYPES))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_fast_path_equals_rfc8785_for_every_event_type(type_name: str, data: st.DataObject) -> None:
    record = data.draw(stored_record(type_name))
    assert canonical_json_unchecked(record) == rfc8785.dumps(record)
    assert canonical_bytes(record) == rfc8785.dumps(record)  # the writer's
    assert canonical_json(record) == rfc8785.dumps(record)


@settings(max_examples=200, deadline=None)
@given(record=stored_record())
def test_the_sealed_bytes_hash_to_what_an_auditor_recomputes(record: dict[str, Any]) -> None:
    state, digest = HashChainSealer().seal(record)
    assert sealed_part(state) == rfc8785.dumps(record)
    assert state == stored_bytes(rfc8785.dumps(record), digest)
    assert digest == hashlib.sha256(rfc8785.dumps(record)).hexdigest() == record_hash({**record, "hash": "x"})


@pytest.mark.parametrize("value", [1.5, 2**60, {"é": 1}, {1: "x"}])
def test_values_outside_the_canonical_subset_are_refused_not_mis_encoded(value: Any) -> None:
    with pytest.raises(ValueError):
        canonical_json({"v": value})
