"""An upstream source's stream: its public keys and the event types it may publish.

The registry is event-sourced like everything else, so an auditor can see when a key was
registered or revoked, by whom, and check old signatures with the key that was valid
then. orderlog holds only public keys: it can check a source's signature, never forge one.
"""

from __future__ import annotations

from dataclasses import dataclass

from orderlog.domain.record import Record
from orderlog.domain.stream import StreamAggregate


@dataclass
class SourceKey:
    key_id: str
    public_key: str
    types: tuple[str, ...]
    registered_at: str
    registered_by: str | None = None
    revoked_at: str | None = None
    revoked_by: str | None = None


class Source(StreamAggregate):
    STREAM = "source"
    OPENED_BY = frozenset({"SourceRegistered"})

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.keys: list[SourceKey] = []

    @property
    def name(self) -> str:
        return self.key

    @property
    def active_key(self) -> SourceKey | None:
        active = [key for key in self.keys if key.revoked_at is None]
        return active[-1] if active else None

    def on_SourceRegistered(self, record: Record) -> None:
        self.keys.append(
            SourceKey(
                key_id=record.data["key_id"],
                public_key=record.data["public_key"],
                types=tuple(record.data["types"]),
                registered_at=record.occurred_at,
                registered_by=record.actor,
            )
        )

    def on_SourceRevoked(self, record: Record) -> None:
        for key in self.keys:
            if key.key_id == record.data["key_id"] and key.revoked_at is None:
                key.revoked_at = record.occurred_at
                key.revoked_by = record.actor
