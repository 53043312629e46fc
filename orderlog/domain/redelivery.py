"""Re-deliveries: is an event that arrives again the same event, or a different one?

Upstream systems re-send (a retry after a timeout, a replayed queue, a second
integration). An event id the stream already holds is the same event only if it says the
same thing; if it says something else, an upstream system re-used an id, and applying it
would count a payment that never happened or lose one that did. So a re-delivery is
compared with what the stream recorded under that id: what the upstream sent (type,
event time, source, actor, correlation id, data), not what orderlog added.
"""

from __future__ import annotations

import json
from typing import Any

from orderlog.domain.contract import EVENT_TYPES, PERSONAL_ADDRESS_FIELDS
from orderlog.domain.envelope import Upstream
from orderlog.domain.record import Record

DIFFERENCES_SHOWN = 3

STANDS_FOR_REQUEST = {
    "RequestRefused": ("request_type", "request_data"),
    "ConflictRecorded": ("fact_type", "fact_data"),
}
"""Records kept under an upstream event's id in its place: where they keep its type and data."""


def sent_content(record: Record) -> dict[str, Any]:
    """What the upstream sent, as a stored record keeps it (a refusal or a conflict record
    keeps the request's or the fact's own type and data)."""
    event_type, data = record.type, record.data
    if event_type in STANDS_FOR_REQUEST:
        type_field, data_field = STANDS_FOR_REQUEST[event_type]
        event_type, data = data[type_field], json.loads(data[data_field])
    return {
        "type": event_type,
        "occurred_at": record.occurred_at,
        "source": record.source,
        "actor": record.actor,
        "correlation_id": record.correlation_id,
        "data": data,
    }


def upstream_content(upstream: Upstream) -> dict[str, Any]:
    """What an arriving envelope says, in the form `sent_content` gives for a record."""
    return {
        "type": upstream.type,
        "occurred_at": upstream.occurred_at,
        "source": upstream.source,
        "actor": upstream.actor,
        "correlation_id": upstream.correlation_id,
        "data": upstream.data,
    }


def differences(
    earlier: dict[str, Any], later: dict[str, Any], *, hidden: frozenset[str] = frozenset(), path: str = ""
) -> list[str]:
    """`data.amount 100 -> 19700`-style lines for the first members that differ; members in
    `hidden` (personal data) are named without their values, since reasons travel into
    rejects files, logs and dead-letter headers that no erasure can reach."""
    found: list[str] = []
    for name in dict.fromkeys([*earlier, *later]):
        where = f"{path}.{name}" if path else name
        before, after = earlier.get(name), later.get(name)
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict):
            found += differences(before, after, hidden=hidden, path=where)
        elif where in hidden:
            found.append(f"{where} differs")
        else:
            found.append(f"{where} {_shown(before)} -> {_shown(after)}")
        if len(found) >= DIFFERENCES_SHOWN:
            return found[:DIFFERENCES_SHOWN]
    return found


def personal_paths(event_type: str) -> frozenset[str]:
    """Where an event type's content holds personal data (`data.shipping_address.name`, ...)."""
    return frozenset(
        f"data.{field}.{part}" for field in EVENT_TYPES[event_type].address_fields for part in PERSONAL_ADDRESS_FIELDS
    )


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."
