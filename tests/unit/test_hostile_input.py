"""Hostile input against the envelope reader: whatever a line holds, the only way out is a
validated envelope or an InvalidEvent whose reason names the field and says in words what
is wrong. Each class is tried on every field of the contract it applies to, not one example."""

from __future__ import annotations

import json
import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from orderlog.domain.contract import IDENTIFIER_PATTERN, PROSE_PATTERN, TEXT_PATTERN, UPSTREAM_TYPES
from orderlog.domain.envelope import ENVELOPES, InvalidEvent, read_envelope, stream_key_of
from tests import builders as b

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
EXAMPLES = {
    json.loads(line)["type"]: json.loads(line)
    for line in re.findall(r"```json\n(.*?)```", README, flags=re.DOTALL)[1].splitlines()
    if line.strip()
}
UNSAFE_SAMPLES = {
    "C0 escape": "\x1b",
    "NUL": "\x00",
    "DEL": "\x7f",
    "C1": "\x85",
    "right-to-left override": "\u202e",
    "left-to-right isolate": "\u2066",
    "zero-width space": "\u200b",
    "zero-width joiner": "\u200d",
    "byte-order mark": "\ufeff",
    "line separator": "\u2028",
}
TEXT_PATTERNS = {IDENTIFIER_PATTERN, TEXT_PATTERN, PROSE_PATTERN}


def string_paths(model: type[BaseModel], prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to an id or text of the contract in one envelope model (lists: first item)."""
    paths = []
    for name, field in model.model_fields.items():
        paths += _paths_of(field.annotation, list(field.metadata), (*prefix, name))
    return paths


def _paths_of(annotation: Any, metadata: list[Any], path: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        return _paths_of(base, metadata + extra, path)
    if origin in (typing.Union, types.UnionType):
        return [p for arg in typing.get_args(annotation) for p in _paths_of(arg, metadata, path)]
    if origin is list:
        return _paths_of(typing.get_args(annotation)[0], [], (*path, 0))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return string_paths(annotation, path)
    if annotation is str and any(getattr(m, "pattern", None) in TEXT_PATTERNS for m in metadata):
        return [path]
    return []


def with_value(envelope: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(envelope))
    target = copy
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return copy


def dotted(path: tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(path))


TEXT_FIELDS = [
    (name, path)
    for name in UPSTREAM_TYPES
    for path in dict.fromkeys(string_paths(ENVELOPES[name]))
    if path != ("type",)
]


def test_every_upstream_type_has_ids_and_texts_to_attack() -> None:
    assert {name for name, _ in TEXT_FIELDS} == set(UPSTREAM_TYPES)
    assert ("OrderSubmitted", ("data", "shipping_address", "name")) in TEXT_FIELDS
    assert ("OrderSubmitted", ("data", "lines", 0, "sku")) in TEXT_FIELDS


@pytest.mark.parametrize(("type_name", "path"), TEXT_FIELDS, ids=[f"{n}:{dotted(p)}" for n, p in TEXT_FIELDS])
@pytest.mark.parametrize("kind", sorted(UNSAFE_SAMPLES))
def test_no_id_or_text_may_hold_control_bidi_or_zero_width_characters(
    type_name: str, path: tuple[Any, ...], kind: str
) -> None:
    envelope = with_value(EXAMPLES[type_name], path, f"ok{UNSAFE_SAMPLES[kind]}ok")
    with pytest.raises(InvalidEvent) as caught:
        read_envelope(json.dumps(envelope))
    reason = caught.value.reason
    assert reason.startswith(f"{dotted(path)}: holds U+{ord(UNSAFE_SAMPLES[kind]):04X}"), reason
    assert "pattern" not in reason and "\\x" not in reason


def test_an_id_with_a_zero_width_space_is_not_stored_under_a_lookalike() -> None:
    with pytest.raises(InvalidEvent, match=r"order_id: holds U\+200B \(zero width space\) at position 7"):
        read_envelope(b.line(b.paid(order_id="SO-1001\u200b")))


@pytest.mark.parametrize(
    ("value", "words"),
    [(" SO-1", "has blanks at its start or end"), ("SO-1 ", "has blanks at its start or end"), ("  ", "is blank")],
)
def test_blank_or_padded_ids_are_named_in_words(value: str, words: str) -> None:
    assert read_reason(b.line(b.paid(order_id=value))) == f"order_id: {words}"


def test_a_currency_that_is_not_an_iso_code_is_named_in_words() -> None:
    data = {**b.submitted()["data"], "currency": "cny"}
    assert "data.currency: should be a three-letter ISO 4217 currency code" in read_reason(
        json.dumps(b.envelope("OrderSubmitted", data=data))
    )


MONEY_AND_COUNTS = [
    ("OrderSubmitted", ("data", "total")),
    ("OrderSubmitted", ("data", "shipping_fee")),
    ("OrderSubmitted", ("data", "discount")),
    ("OrderSubmitted", ("data", "lines", 0, "unit_price")),
    ("OrderSubmitted", ("data", "lines", 0, "qty")),
    ("PaymentCaptured", ("data", "amount")),
    ("RefundIssued", ("data", "amount")),
    ("ShipmentDispatched", ("data", "lines", 0, "qty")),
    ("StockCounted", ("data", "on_hand")),
]


@pytest.mark.parametrize(("type_name", "path"), MONEY_AND_COUNTS, ids=[f"{n}:{dotted(p)}" for n, p in MONEY_AND_COUNTS])
@pytest.mark.parametrize("value", ["1000", 1000.0, True, None, [1000]], ids=repr)
def test_money_and_quantities_are_strict_integers_everywhere(type_name: str, path: tuple[Any, ...], value: Any) -> None:
    reason = read_reason(json.dumps(with_value(EXAMPLES[type_name], path, value)))
    assert reason.startswith(f"{dotted(path)}: Input should be a valid integer"), reason


@pytest.mark.parametrize(
    ("type_name", "path"),
    [("OrderSubmitted", ("data", "lines", 0, "qty")), ("ShipmentDispatched", ("data", "lines", 0, "qty"))],
)
def test_a_quantity_of_zero_is_refused(type_name: str, path: tuple[Any, ...]) -> None:
    assert read_reason(json.dumps(with_value(EXAMPLES[type_name], path, 0))) == (
        f"{dotted(path)}: Input should be greater than 0 (got 0)"
    )


def test_a_note_of_blanks_does_not_explain_reason_other() -> None:
    assert "reason_code OTHER needs a note" in read_reason(b.line(b.cancelled(reason_code="OTHER", note="   ")))


@pytest.mark.parametrize(
    "moment",
    ["9999-12-31T23:00:00-05:00", "0001-01-01T00:30:00+01:00", "1969-12-31T23:59:59Z", "10000-01-01T00:00:00Z"],
)
def test_a_time_whose_utc_form_leaves_the_calendar_is_named(moment: str) -> None:
    reason = read_reason(b.line(b.paid(at=moment)))
    assert reason.startswith("occurred_at: "), reason


def test_a_byte_order_mark_before_the_json_is_accepted() -> None:
    assert read_envelope(b"\xef\xbb\xbf" + b.line(b.paid()).encode()).type == "PaymentCaptured"
    assert read_envelope("\ufeff" + b.line(b.paid())).type == "PaymentCaptured"


def test_a_member_named_twice_is_refused_because_readers_disagree_on_which_counts() -> None:
    text = b.line(b.paid(order_id="SO-1")).replace('"order_id": "SO-1"', '"order_id": "SO-1", "order_id": "SO-2"')
    assert "member 'order_id' appears twice" in read_reason(text)
    escaped_twin = b.line(b.paid()).replace('"source":', '"sour\\u0063e": "x", "source":')
    assert "member 'source' appears twice" in read_reason(escaped_twin)


def test_event_ids_in_orderlogs_own_namespace_are_refused() -> None:
    assert "orderlog's own" in read_reason(b.line(b.paid(event_id="orderlog/completed/evt-1")))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"event_id": "e\\ud800", "type": "PaymentCaptured", "order_id": "SO-1"}',
        b'{"event_id": "e", "order_id": "SO-\\udc00"}',
        b'{"event_id": "e\xff"}',
        b"\x00\x01\x02",
        b"",
        b'{"event_id": "e", "type": "PaymentCaptured", "data": {"amount": ' + b"9" * 10_000 + b"}}",
        b'{"event_id": "e", "type": "PaymentCaptured", "data": {"amount": 1e400}}',
        b'"just a string"',
        b"null",
    ],
    ids=[
        "deep-object",
        "deep-array",
        "high-surrogate",
        "low-surrogate",
        "bad-utf8",
        "nul",
        "empty",
        "huge",
        "inf",
        "str",
        "null",
    ],
)
def test_hostile_bytes_give_a_reason_and_nothing_else(raw: bytes) -> None:
    with pytest.raises(InvalidEvent) as caught:
        read_envelope(raw)
    assert caught.value.reason and "\n" not in caught.value.reason


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_any_bytes_at_all_are_read_or_rejected_with_a_reason(raw: bytes) -> None:
    try:
        read_envelope(raw)
    except InvalidEvent as error:
        assert error.reason
    assert stream_key_of(raw) is None or isinstance(stream_key_of(raw), str)


def test_the_stream_key_is_read_as_json_reads_it() -> None:
    assert stream_key_of(b'{"type": "PaymentCaptured", "order_id": "SO\\u002d1"}') == "SO-1"
    assert stream_key_of(b.line(b.stock_counted(sku="K-1")).encode()) == "K-1"
    dispatch = b.line(b.dispatched("SO-9", lines=[("SKU-A", 1)])).encode()
    assert dispatch.index(b'"sku"') > 0 and stream_key_of(dispatch) == "SO-9"  # the order, not a line's SKU
    assert stream_key_of(b"[[[[[") is None


def read_reason(text: str | bytes) -> str:
    with pytest.raises(InvalidEvent) as caught:
        read_envelope(text)
    return caught.value.reason


def test_a_member_named_twice_inside_one_of_several_order_lines_is_refused() -> None:
    two_lines = b.line(b.submitted(lines=[("SKU-A", 1, 100), ("SKU-B", 2, 100)], total=300))
    assert read_envelope(two_lines).type == "OrderSubmitted"  # names that repeat once per line are fine
    twice = two_lines.replace('"sku": "SKU-B"', '"sku": "SKU-B", "sku": "SKU-C"')
    assert "member 'sku' appears twice" in read_reason(twice)
    qty_twice = two_lines.replace('"qty": 2', '"qty": 2, "qty": 9')
    assert "member 'qty' appears twice" in read_reason(qty_twice)
