"""The log as an auditor reads it: every stored record, in store order, with its hash
recomputed from its content (not taken from the record)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from orderlog.store.database import Database
from orderlog.store.mapper import HASH_SUFFIX_LENGTH, sealed_part, stored_state

PAGE = 10_000


@dataclass(frozen=True, slots=True)
class LogEntry:
    position: int
    originator_id: str
    version: int
    topic: str
    record: dict[str, Any] | None
    recomputed: str
    """SHA-256 of the record's stored canonical bytes without its hash (of all its bytes if unreadable)."""
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
    """One stored row, its record parsed and its hash recomputed from the stored bytes.

    A stored state is the record's canonical JSON with the hash appended as the last
    member (orderlog.store.mapper), so the recomputed hash is SHA-256 of those canonical
    bytes: the same digest as RFC 8785 over the record's fields (the property tests prove
    the writer's bytes are exactly RFC 8785), at a fraction of the cost, and any change
    to the bytes, even one that leaves the parsed values equal, changes it.
    """
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
    if state[-HASH_SUFFIX_LENGTH:] != stored_state(b"}", record["hash"]):
        return LogEntry(
            position,
            originator_id,
            version,
            topic,
            record,
            hashlib.sha256(state).hexdigest(),
            "the stored record's hash is not its last member, where orderlog writes it",
        )
    return LogEntry(position, originator_id, version, topic, record, hashlib.sha256(sealed_part(state)).hexdigest())


# ---------------------------------------------------------------- the fast path of verification

TAIL = re.compile(
    rb'"key":"((?:[^"\\]|\\.)*)","occurred_at":"[^"]*","prev_hash":"([0-9a-f]{64})","recorded_at":"[^"]*",'
    rb'"signature":(?:null|"[^"]*"),"signed_envelope":(?:null|"(?:[^"\\]|\\.)*"),"source":"(?:[^"\\]|\\.)*",'
    rb'"stream":"([a-z]+)","type":"[A-Za-z]+","version":([0-9]+),"hash":"([0-9a-f]{64})"}'
)
"""The top-level members after `data` of a canonical stored record, in their fixed order."""


def quick_fields(state: bytes) -> tuple[str, str, str, int, str] | None:
    """(key, prev_hash, stream, version, stored hash) of a well-formed stored record, read
    without parsing the whole record; None when the bytes are not exactly in orderlog's
    layout (then the careful path parses them and says what is wrong).

    In canonical JSON an unescaped `"key":"` can only be a member name, and `data` (the
    only nested object) has no member called `key`, so the last one is the record's own.
    """
    at = state.rfind(b'"key":"')
    match = TAIL.fullmatch(state, at) if at >= 0 else None
    if match is None:
        return None
    raw_key = match.group(1)
    key = json.loads(b'"' + raw_key + b'"') if b"\\" in raw_key else raw_key.decode()
    return key, match.group(2).decode(), match.group(3).decode(), int(match.group(4)), match.group(5).decode()


def sealed_digest(state: bytes) -> bytes:
    """SHA-256 of a stored record's canonical bytes (without its hash), without copying them."""
    digest = hashlib.sha256(memoryview(state)[:-HASH_SUFFIX_LENGTH])
    digest.update(b"}")
    return digest.digest()
