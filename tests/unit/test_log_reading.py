"""The fast reading of a stored record's tail agrees with a full parse, for any record."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings

from orderlog.audit.log import entry_from_row, quick_fields, sealed_digest
from orderlog.domain.stream import HashChainSealer
from tests.strategies import stored_record


@settings(max_examples=300, deadline=None)
@given(record=stored_record())
def test_quick_fields_equal_a_full_parse(record: dict[str, Any]) -> None:
    state, digest = HashChainSealer().seal(record)
    parsed = json.loads(state)
    assert quick_fields(state) == (parsed["key"], parsed["prev_hash"], parsed["stream"], parsed["version"], digest)
    assert sealed_digest(state).hex() == digest == entry_from_row(1, "x", record["version"], "t", state).recomputed


def test_a_damaged_tail_is_left_to_the_careful_path() -> None:
    record = {"key": "SO-1", "occurred_at": "x", "prev_hash": "0" * 64, "stream": "order", "type": "T", "version": 1}
    state, _digest = HashChainSealer().seal(record)
    assert quick_fields(state) is not None
    for damaged in (state[:-3] + b"Z" + state[-2:], state.replace(b'"version":1', b'"version":x'), state[:-80]):
        assert quick_fields(damaged) is None
