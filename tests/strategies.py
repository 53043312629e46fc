"""Hypothesis strategies derived from the contract's declarations, so that property tests
follow the contract: a field added there is generated here without further code."""

from __future__ import annotations

import base64
import re
import types
import typing
from datetime import datetime
from typing import Any

from annotated_types import Ge, Gt, Le, MaxLen, MinLen
from hypothesis import strategies as st
from pydantic import BaseModel

from orderlog.domain.contract import EVENT_TYPES, MAX_SAFE_INTEGER

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
PRINTABLE = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=20)
INSTANTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"
)
SIGNATURES = st.binary(min_size=64, max_size=64).map(lambda raw: base64.b64encode(raw).decode())


def for_annotation(annotation: Any, metadata: list[Any] | None = None) -> st.SearchStrategy[Any]:
    metadata = list(metadata or [])
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        return for_annotation(base, metadata + extra)
    if origin is typing.Literal:
        return st.sampled_from(typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(for_annotation(a, metadata) for a in typing.get_args(annotation)))
    if annotation is type(None):
        return st.none()
    if origin is list:
        (item,) = typing.get_args(annotation)
        sizes = _bounds(metadata, 0, 4)
        items = for_annotation(item)
        if isinstance(item, type) and issubclass(item, BaseModel) and "sku" in item.model_fields:
            return st.lists(items, min_size=max(1, sizes[0]), max_size=4, unique_by=lambda line: line["sku"])
        return st.lists(items, min_size=sizes[0], max_size=min(4, sizes[1]))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return model_data(annotation)
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        low, high = _bounds(metadata, -MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
        return st.integers(low, min(high, MAX_SAFE_INTEGER))
    if annotation is str:
        return _string(metadata)
    raise TypeError(f"no strategy for {annotation!r}")


def _bounds(metadata: list[Any], low: int, high: int) -> tuple[int, int]:
    for item in metadata:
        for part in getattr(item, "metadata", [item]):
            if isinstance(part, Ge | MinLen):
                low = getattr(part, "ge", getattr(part, "min_length", low))
            elif isinstance(part, Gt):
                low = part.gt + 1
            elif isinstance(part, Le | MaxLen):
                high = getattr(part, "le", getattr(part, "max_length", high))
    return low, high


def _string(metadata: list[Any]) -> st.SearchStrategy[str]:
    for item in metadata:
        pattern = getattr(item, "pattern", None)
        if pattern == r"^[A-Z]{3}$":
            return st.from_regex(re.compile(pattern), fullmatch=True)
        if getattr(item, "func", None) is not None:  # an instant
            return INSTANTS
        if pattern:
            return PRINTABLE
    return TEXT


def model_data(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    fields = {name: for_annotation(field.annotation, field.metadata) for name, field in model.model_fields.items()}
    strategy = st.fixed_dictionaries(fields)
    if model.__name__ == "OrderCancelled":
        strategy = strategy.filter(lambda d: d["reason_code"] != "OTHER" or d["note"].strip())
    return strategy


@st.composite
def stored_record(draw: st.DrawFn, type_name: str | None = None) -> dict[str, Any]:
    """A record as orderlog stores and hashes it, of any event type (data in stored form)."""
    name = type_name or draw(st.sampled_from(sorted(EVENT_TYPES)))
    event_type = EVENT_TYPES[name]
    return {
        "stream": event_type.stream,
        "key": draw(PRINTABLE),
        "version": draw(st.integers(1, 10**6)),
        "type": name,
        "event_id": draw(PRINTABLE),
        "occurred_at": draw(INSTANTS),
        "recorded_at": draw(INSTANTS),
        "source": draw(PRINTABLE),
        "actor": draw(st.none() | TEXT),
        "correlation_id": draw(st.none() | PRINTABLE),
        "data": draw(model_data(event_type.stored_data)),
        "signature": draw(st.none() | SIGNATURES),
        "signed_envelope": draw(st.none() | TEXT),
        "prev_hash": draw(st.binary(min_size=32, max_size=32).map(bytes.hex)),
    }
