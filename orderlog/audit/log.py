"""The log as an auditor reads it: every stored record, in store order, with its hash
recomputed from its content (not taken from the record)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from orderlog.audit_verify import canonical_json_unchecked
from orderlog.store.database import Database

PAGE = 10_000


@dataclass(frozen=True, slots=True)
class LogEntry:
    position: int
    originator_id: str
    version: int
    topic: str
    record: dict[str, Any] | None
    recomputed: str
    """SHA-256 of the record's canonical JSON without its hash (of the raw bytes if unreadable)."""
    problem: str = ""

    @property
    def stored_hash(self) -> str | None:
        return None if self.record is None else self.record.get("hash")

    @property
    def label(self) -> str:
        """`order SO-1 version 3 (store position 1234)`, from the record when it can be read."""
        record = self.record or {}
        stream = record.get("stream") or self.topic.partition("/")[0]
        key = record.get("key", f"id {self.originator_id}")
        return f"{stream} {key} version {self.version} (store position {self.position})"


def read_log(database: Database, after: int = 0, page: int = PAGE) -> Iterator[LogEntry]:
    position = after
    while rows := database.log_rows(position, page):
        for row in rows:
            yield entry_from_row(*row)
        position = rows[-1][0]


def entry_from_row(position: int, originator_id: str, version: int, topic: str, state: bytes) -> LogEntry:
    try:
        record = json.loads(state)
    except (ValueError, UnicodeDecodeError):
        return LogEntry(
            position,
            originator_id,
            version,
            topic,
            None,
            hashlib.sha256(state).hexdigest(),
            "the stored record is not readable JSON",
        )
    if not isinstance(record, dict) or not isinstance(record.get("hash"), str):
        return LogEntry(
            position,
            originator_id,
            version,
            topic,
            None,
            hashlib.sha256(state).hexdigest(),
            "the stored record has no hash",
        )
    body = {name: value for name, value in record.items() if name != "hash"}
    try:
        recomputed = hashlib.sha256(canonical_json_unchecked(body)).hexdigest()
    except (TypeError, ValueError):
        return LogEntry(
            position,
            originator_id,
            version,
            topic,
            record,
            hashlib.sha256(state).hexdigest(),
            "the stored record holds values without a canonical form",
        )
    return LogEntry(position, originator_id, version, topic, record, recomputed)
