"""The log as an auditor reads it: every stored record, in store order, with its hash
recomputed from its content (not taken from the record)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from orderlog.domain.record import HASH_SUFFIX_LENGTH, sealed_part, stored_bytes
from orderlog.domain.text import is_whole_number
from orderlog.store.log import LogReader


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


def read_log(log: LogReader, after: int = 0) -> Iterator[LogEntry]:
    return (entry_from_row(*row) for row in log.rows(after))


def entry_from_row(position: int, originator_id: str, version: int, topic: str, state: bytes) -> LogEntry:
    """One stored row, its record parsed and its hash recomputed from the stored bytes.

    A stored state is the record's canonical JSON with the hash appended as the last
    member (orderlog.store.mapper), so the recomputed hash is SHA-256 of those canonical
    bytes: the same digest as RFC 8785 over the record's fields (the property tests prove
    the writer's bytes are exactly RFC 8785), at a fraction of the cost, and any change
    to the bytes, even one that leaves the parsed values equal, changes it.
    """

    def damaged(record: dict[str, Any] | None, problem: str) -> LogEntry:
        return LogEntry(position, originator_id, version, topic, record, hashlib.sha256(state).hexdigest(), problem)

    try:
        record = json.loads(state)
    except (ValueError, UnicodeDecodeError):
        return damaged(None, "the stored record is not readable JSON")
    if not isinstance(record, dict) or not isinstance(record.get("hash"), str):
        return damaged(None, "the stored record has no hash")
    if state[-HASH_SUFFIX_LENGTH:] != stored_bytes(b"}", record["hash"]):
        return damaged(record, "the stored record's hash is not its last member, where orderlog writes it")
    return LogEntry(position, originator_id, version, topic, record, hashlib.sha256(sealed_part(state)).hexdigest())


# ---------------------------------------------------------------- the fast path of verification

HEX = frozenset(b"0123456789abcdef")


def quick_fields(state: bytes) -> tuple[str, str, str, int, str] | None:
    """(key, prev_hash, stream, version, stored hash) of a well-formed stored record, read
    from its tail without parsing the whole record; None when anything there is not as
    orderlog writes it (then the careful path parses the record and says what is wrong).

    In canonical JSON the members after `data` come in a fixed order, and an unescaped
    `"name":` can only be a member name (quotes inside strings are escaped), so the last
    occurrence of each is the record's own. The fields read here only decide whether the
    record links up; its bytes are hashed in full either way, and every byte outside the
    digest (the hash member and the closing `"}`) is checked here, so no byte of a stored
    record can change unnoticed.
    """
    hash_at = len(state) - 66
    version_at = state.rfind(b',"version":', 0, hash_at)
    stream_at = state.rfind(b',"stream":"', 0, version_at)
    previous_at = state.rfind(b'"prev_hash":"', 0, stream_at)
    key_at = state.rfind(b'"key":"', 0, previous_at)
    key_end = state.find(b'","occurred_at":"', key_at)
    type_at = state.find(b'","type":"', stream_at)
    if (
        min(version_at, stream_at, previous_at, key_at, key_end, type_at) < 0
        or state[hash_at - 9 : hash_at] != b',"hash":"'
        or state[-2:] != b'"}'  # the one part of the stored bytes that neither the digest nor the hash covers
    ):
        return None
    stored_hash, previous = state[hash_at : hash_at + 64], state[previous_at + 13 : previous_at + 77]
    version = state[version_at + 11 : hash_at - 9]
    if not (is_whole_number(version) and HEX.issuperset(stored_hash) and HEX.issuperset(previous)):
        return None
    raw_key = state[key_at + 7 : key_end]
    key = json.loads(b'"' + raw_key + b'"') if b"\\" in raw_key else raw_key.decode()
    return key, previous.decode(), state[stream_at + 11 : type_at].decode(), int(version), stored_hash.decode()


def sealed_digest(state: bytes) -> bytes:
    """SHA-256 of a stored record's canonical bytes (without its hash), without copying them."""
    digest = hashlib.sha256(memoryview(state)[:-HASH_SUFFIX_LENGTH])
    digest.update(b"}")
    return digest.digest()
