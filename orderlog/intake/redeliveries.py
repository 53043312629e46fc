"""Judging a re-delivered event id against what the store recorded under it.

The same content is a duplicate; other content is a conflict (an upstream re-used the
id), reported and never applied. Recorded personal parts are sealed, so they are opened
(with the vault) to compare with the plaintext that arrives; after an erasure they cannot
be, and the rest of the content decides. The rules of what counts as "the same" live in
orderlog.domain.redelivery; this module fetches and opens what they compare.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from orderlog.domain.contract import EVENT_TYPES, PERSONAL_ADDRESS_FIELDS
from orderlog.domain.envelope import Upstream
from orderlog.domain.record import Record
from orderlog.domain.redelivery import differences, personal_paths, sent_content, upstream_content
from orderlog.domain.stream import DUPLICATE, Decision, Outcome, StreamAggregate
from orderlog.privacy.vault import ENCRYPTED, ERASED, Vault

if TYPE_CHECKING:
    from orderlog.application import OrderLog


class BatchRecords:
    """The records of the batch being applied (not stored yet), and the store behind them."""

    def __init__(self, app: OrderLog):
        self._app = app
        self._pending: dict[tuple[UUID, int], Record] = {}

    def add(self, events: list[Any]) -> None:
        for event in events:
            self._pending[(event.originator_id, event.originator_version)] = event.record

    def record(self, stream_id: UUID, version: int) -> Record:
        pending = self._pending.get((stream_id, version))
        return pending if pending is not None else self._app.record_at(stream_id, version)


def _without_unreadable_personal_parts(
    recorded: dict[str, Any], arriving: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """After an erasure (or without the master key) recorded personal parts cannot be read:
    they are left out on both sides, and the rest of the content still decides."""
    if recorded["type"] != arriving["type"]:
        return recorded, arriving
    address_fields = EVENT_TYPES[recorded["type"]].address_fields
    for name in address_fields:
        shown = recorded["data"].get(name, {})
        unreadable = [part for part in PERSONAL_ADDRESS_FIELDS if shown.get(part) in (ERASED, ENCRYPTED)]
        if unreadable and isinstance(arriving["data"].get(name), dict):
            arriving = {**arriving, "data": {**arriving["data"], name: {**arriving["data"][name]}}}
            for part in unreadable:
                arriving["data"][name][part] = shown[part]
    return recorded, arriving


def judge_redelivery(stream: StreamAggregate, item: Upstream, batch: BatchRecords, vault: Vault) -> Decision:
    """An event id the stream holds: a duplicate if it says what was recorded under that
    id, else a conflict, reported and never applied."""
    version = stream.event_ids[item.event_id]
    earlier = batch.record(stream.id, version)
    recorded = _opened(sent_content(earlier), vault)
    arriving = upstream_content(item)
    recorded, arriving = _without_unreadable_personal_parts(recorded, arriving)
    if recorded == arriving:
        return DUPLICATE
    changed = "; ".join(differences(recorded, arriving, hidden=personal_paths(recorded["type"])))
    return Decision(
        Outcome.CONFLICT,
        f"event id {item.event_id} is already recorded as {stream.STREAM} {stream.key} version {version} "
        f"({recorded['type']}, occurred {recorded['occurred_at']}) with other content ({changed}); not applied",
    )


def _opened(content: dict[str, Any], vault: Vault) -> dict[str, Any]:
    """Recorded content with its sealed addresses opened, to compare with plaintext input."""
    address_fields = EVENT_TYPES[content["type"]].address_fields
    if not address_fields:
        return content
    data = dict(content["data"])
    for name in address_fields:
        data[name] = vault.open_address(data[name])
    return {**content, "data": data}
