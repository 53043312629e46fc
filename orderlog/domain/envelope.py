"""Reading one upstream envelope: JSON text in, a validated `Upstream` or a clear error out.

The envelope models are derived from the contract (one per upstream event type, told
apart by `type`), so adding an event type to the contract is the only change needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import Field, TypeAdapter, ValidationError, create_model

from orderlog.domain.contract import (
    EVENT_TYPES,
    UPSTREAM_TYPES,
    Contract,
    Identifier,
    Instant,
    OrderCompleted,
    Text,
)

Signature = Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]{86}==$")]
"""Standard base64 (RFC 4648, padded) of a 64-byte Ed25519 signature."""


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
    """Validates one JSON envelope. Raises InvalidEvent naming the field and the reason."""
    try:
        envelope = _ANY_ENVELOPE.validate_json(text)
    except ValidationError as error:
        raise InvalidEvent(describe_validation_error(error), **_best_effort_ids(text)) from None
    event_type = EVENT_TYPES[envelope.type]
    return Upstream(
        type=envelope.type,
        key=getattr(envelope, event_type.key_field),
        event_id=envelope.event_id,
        occurred_at=envelope.occurred_at,
        source=envelope.source,
        actor=envelope.actor,
        correlation_id=envelope.correlation_id,
        data=envelope.data.model_dump(),
        signature=envelope.signature,
    )


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
        elif kind == "literal_error":
            problems.append(
                f"{path}: {_short(detail.get('input'))} is not one of the allowed values "
                f"({_short(detail.get('ctx', {}).get('expected'), 120)})"
            )
        else:
            message = detail["msg"].removeprefix("Value error, ")
            got = detail.get("input")
            shown = "" if isinstance(got, dict | list) else f" (got {_short(got)})"
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


def _best_effort_ids(text: str | bytes) -> dict[str, str | None]:
    """The event id and stream key of a rejected envelope, when they can be read at all."""
    try:
        raw = json.loads(text)
    except (ValueError, TypeError):
        return {"event_id": None, "key": None}
    if not isinstance(raw, dict):
        return {"event_id": None, "key": None}
    event_id = raw.get("event_id")
    key = raw.get("order_id", raw.get("sku"))
    return {
        "event_id": event_id if isinstance(event_id, str) else None,
        "key": key if isinstance(key, str) else None,
    }
