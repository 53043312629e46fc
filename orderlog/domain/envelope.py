"""Reading one upstream envelope: JSON text in, a validated `Upstream` or a clear error out.

The envelope models are derived from the contract (one per upstream event type, told
apart by `type`), so adding an event type to the contract is the only change needed.
"""

from __future__ import annotations

import json
import re
import typing
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import Field, TypeAdapter, ValidationError, create_model

from orderlog.domain.contract import (
    ENGINE_SOURCE,
    EVENT_TYPES,
    UPSTREAM_TYPES,
    Contract,
    Identifier,
    Instant,
    OrderCompleted,
    Text,
    pattern_mismatch,
)

SIGNATURE_PATTERN = r"^[A-Za-z0-9+/]{86}==$"
Signature = Annotated[str, Field(pattern=SIGNATURE_PATTERN)]
"""Standard base64 (RFC 4648, padded) of a 64-byte Ed25519 signature."""

BYTE_ORDER_MARK = "\ufeff"
RESERVED_EVENT_IDS = f"{ENGINE_SOURCE}/"
"""Event ids orderlog gives its own records (the engine's completions, its registry
records); an upstream id there could take the place of one of them."""


def _list_fields(model: type[Contract]) -> dict[str, frozenset[bytes]]:
    """The data's fields that hold a list of records, each with its items' member names."""
    return {
        name: frozenset(item.encode() for item in typing.get_args(field.annotation)[0].model_fields)
        for name, field in model.model_fields.items()
        if typing.get_origin(field.annotation) is list
    }


LIST_FIELDS = {name: _list_fields(EVENT_TYPES[name].data) for name in UPSTREAM_TYPES}
"""Per upstream type: its lists of records (`lines`) and the member names their items hold."""
UPSTREAM_KEY_FIELDS = tuple(dict.fromkeys(EVENT_TYPES[name].key_field for name in UPSTREAM_TYPES))


@dataclass(frozen=True, slots=True)
class Upstream:
    """One validated upstream event, ready for the domain. Times are canonical instants."""

    type: str
    key: str
    event_id: str
    occurred_at: str
    source: str
    actor: str | None
    correlation_id: str | None
    data: dict[str, Any]
    signature: str | None = None
    signed_envelope: str | None = None
    """The canonical envelope the signature covers, kept so that it can be checked later."""

    @property
    def stream(self) -> str:
        return EVENT_TYPES[self.type].stream


class InvalidEvent(ValueError):
    """Input that is not a valid upstream event; the message names the field and why."""

    def __init__(self, reason: str, *, event_id: str | None = None, key: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id
        self.key = key


def _envelope_model(name: str) -> type[Contract]:
    event_type = EVENT_TYPES[name]
    data_field: Any = (
        (event_type.data, OrderCompleted()) if event_type.data is OrderCompleted else (event_type.data, ...)
    )
    return create_model(  # type: ignore[call-overload,no-any-return]
        f"{name}Envelope",
        __base__=Contract,
        event_id=(Identifier, ...),
        type=(Literal[name], ...),
        **{event_type.key_field: (Identifier, ...)},
        occurred_at=(Instant, ...),
        source=(Identifier, ...),
        actor=(Text | None, None),
        correlation_id=(Identifier | None, None),
        data=data_field,
        signature=(Signature | None, None),
    )


ENVELOPES = {name: _envelope_model(name) for name in UPSTREAM_TYPES}
_ANY_ENVELOPE: TypeAdapter[Any] = TypeAdapter(
    Annotated[Union[tuple(ENVELOPES.values())], Field(discriminator="type")]  # noqa: UP007
)


def read_envelope(text: str | bytes) -> Upstream:
    """Validates one JSON envelope. Raises InvalidEvent naming the field and the reason.

    Any text at all may arrive here (garbage bytes, deep nesting, huge numbers, lone
    surrogates): the only exception this raises is InvalidEvent.
    """
    text = _without_byte_order_mark(text)
    try:
        envelope = _ANY_ENVELOPE.validate_json(text)
    except ValidationError as error:
        raise InvalidEvent(describe_validation_error(error), **best_effort_ids(text)) from None
    event_type = EVENT_TYPES[envelope.type]
    key = getattr(envelope, event_type.key_field)
    lists = LIST_FIELDS[envelope.type]
    items = {name: len(getattr(envelope.data, field)) for field, names in lists.items() for name in names}
    twice = duplicate_member(text, items)
    if twice is not None:
        raise InvalidEvent(
            f"member {twice!r} appears twice in one object: readers disagree on which one counts",
            event_id=envelope.event_id,
            key=key,
        )
    if envelope.event_id.startswith(RESERVED_EVENT_IDS):
        raise InvalidEvent(
            f"event_id: ids starting with {RESERVED_EVENT_IDS!r} are orderlog's own",
            event_id=envelope.event_id,
            key=key,
        )
    return Upstream(
        type=envelope.type,
        key=key,
        event_id=envelope.event_id,
        occurred_at=envelope.occurred_at,
        source=envelope.source,
        actor=envelope.actor,
        correlation_id=envelope.correlation_id,
        data=envelope.data.model_dump(),
        signature=envelope.signature,
    )


def _without_byte_order_mark(text: str | bytes) -> str | bytes:
    """A UTF-8 byte-order mark before the JSON is an editor's habit, not content."""
    if isinstance(text, bytes):
        return text[3:] if text.startswith(BYTE_ORDER_MARK.encode()) else text
    return text.removeprefix(BYTE_ORDER_MARK)


_MEMBER_NAME = re.compile(rb'"([a-z_]+)"\s*:')
"""A member name as the contract spells them all (lower case and _): a name that can only
repeat as one of these, since validation refuses every other name."""


class DuplicateMember(ValueError):
    """A JSON object names one member twice (the message is the name)."""


def refuse_duplicate_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`object_pairs_hook` for json.loads: an object, unless a member name repeats."""
    members = dict(pairs)
    if len(members) != len(pairs):
        names = [name for name, _ in pairs]
        raise DuplicateMember(next(name for name in names if names.count(name) > 1))
    return members


def duplicate_member(text: str | bytes, list_items: dict[bytes, int] | None = None) -> str | None:
    """A member name that appears twice in one object of a valid JSON text, if any.

    JSON parsers disagree on which of two equal names counts (this one takes the last, a
    signature check or another consumer may take the first), so such input is refused.
    A scan of the names settles most texts without parsing them again: a name may repeat
    only as a field of a list's items, and `list_items` says how many items hold each such
    name (validation already required it of every item: each order line has a `sku`), so
    when no name appears more often than that, no object holds one twice. Anything else
    (another repeated name, an escape that could spell a name differently) is settled by a
    full parse.
    """
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if b"\\" not in raw:  # no escapes: every member name is spelled out plainly
        names = _MEMBER_NAME.findall(raw)
        if len(names) == len(set(names)):
            return None
        allowed = list_items or {}
        if all(count <= allowed.get(name, 1) for name, count in Counter(names).items()):
            return None
    try:
        json.loads(raw, object_pairs_hook=refuse_duplicate_members)
    except DuplicateMember as duplicate:
        return str(duplicate)
    except (ValueError, RecursionError):
        return None  # already validated as JSON; nothing more to learn here
    return None


def describe_validation_error(error: ValidationError) -> str:
    """One line: `field.path: what is wrong (got X)` for each problem, `; `-separated."""
    problems = []
    for detail in error.errors(include_url=False):
        kind = detail["type"]
        location = list(detail["loc"])
        if location and location[0] in ENVELOPES:
            location = location[1:]  # the discriminator's tag, not a field
        path = _path(location)
        if kind == "union_tag_invalid":
            got = detail.get("ctx", {}).get("tag")
            problems.append(f"type: unknown event type {got!r}; expected one of {', '.join(UPSTREAM_TYPES)}")
        elif kind == "union_tag_not_found":
            problems.append("type: missing (the event type, e.g. PaymentCaptured)")
        elif kind == "json_invalid":
            problems.append(f"not valid JSON: {detail['msg'].removeprefix('Invalid JSON: ')}")
        elif kind == "model_type" and not location:
            problems.append("not a JSON object")
        elif kind == "missing":
            problems.append(f"{path}: missing")
        elif kind == "extra_forbidden":
            problems.append(f"{path}: unknown field")
        elif kind == "string_pattern_mismatch":
            pattern = detail.get("ctx", {}).get("pattern")
            problems.append(f"{path}: {_pattern_words(detail.get('input'), pattern)}")
        elif kind == "literal_error":
            problems.append(
                f"{path}: {_short(detail.get('input'))} is not one of the allowed values "
                f"({_short(detail.get('ctx', {}).get('expected'), 120)})"
            )
        else:
            message = detail["msg"].removeprefix("Value error, ")
            got = detail.get("input")
            shown = (
                ""
                if isinstance(got, dict | list) or (isinstance(got, str) and repr(got) in message)
                else f" (got {_short(got)})"
            )
            problems.append(f"{path}: {message}{shown}")
    return "; ".join(problems)


def _path(location: list[Any]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "envelope"


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) and width > 60 else repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _pattern_words(value: Any, pattern: str) -> str:
    if pattern == SIGNATURE_PATTERN:
        return "should be standard base64 of a 64-byte Ed25519 signature: 88 characters ending in '=='"
    return pattern_mismatch(value if isinstance(value, str) else "", pattern)


def best_effort_ids(text: str | bytes) -> dict[str, str | None]:
    """The event id and stream key of a rejected envelope, when they can be read at all.

    Best effort on input that just failed validation: anything going wrong here (deep
    nesting, bytes that are not UTF-8, a non-object) means the ids are simply unknown.
    """
    try:
        raw = json.loads(text)
    except (ValueError, TypeError, RecursionError):
        return {"event_id": None, "key": None}
    if not isinstance(raw, dict):
        return {"event_id": None, "key": None}
    declared = EVENT_TYPES.get(raw.get("type")) if isinstance(raw.get("type"), str) else None
    key_fields = (declared.key_field,) if declared is not None else UPSTREAM_KEY_FIELDS
    key = next((raw[field] for field in key_fields if isinstance(raw.get(field), str)), None)
    event_id = raw.get("event_id")
    return {"event_id": event_id if isinstance(event_id, str) else None, "key": key}


_PLAIN_KEYS = tuple(re.compile(rb'"' + field.encode() + rb'"\s*:\s*"([^"\\]*)"') for field in UPSTREAM_KEY_FIELDS)


def stream_key_of(text: bytes) -> str | None:
    """The stream key an envelope names (its order id, or the SKU of a stock count), read
    exactly as the JSON reader reads it (`"SO\\u002d1"` is `SO-1`); None when unreadable.

    Fast for the usual line, whose key is spelled plainly and appears once; any line with
    an escape is parsed in full. (A line naming its key twice or in the wrong place is
    invalid whatever its key, so where it goes cannot change its outcome.)
    """
    if b"\\" not in text:
        for pattern in _PLAIN_KEYS:
            found = pattern.search(text)
            if found is not None:
                return found.group(1).decode("utf-8", "replace")
    return best_effort_ids(_without_byte_order_mark(text))["key"]
