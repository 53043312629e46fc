"""What orderlog records on its own account: registry changes, erasures, its own decisions.

Such records have source `orderlog` and an event id in orderlog's own namespace
(`orderlog/...`, which upstream ids may not use), so they can never be mistaken for, or
pre-empted by, an upstream event.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from orderlog.domain.contract import ENGINE_SOURCE
from orderlog.domain.envelope import Upstream
from orderlog.domain.instants import format_instant


def own_record(
    event_type: str,
    key: str,
    data: dict[str, Any],
    actor: str | None,
    *,
    event_id: str | None = None,
    occurred_at: str | None = None,
) -> Upstream:
    """An envelope for something orderlog records on its own account: happening now under a
    new id, unless a decision must be recorded once (a deterministic `event_id`) at the event
    time it was due (`occurred_at`)."""
    return Upstream(
        type=event_type,
        key=key,
        event_id=event_id or f"{ENGINE_SOURCE}/{event_type}/{uuid4().hex}",
        occurred_at=occurred_at or format_instant(datetime.now(UTC)),
        source=ENGINE_SOURCE,
        actor=actor,
        correlation_id=None,
        data=data,
    )
