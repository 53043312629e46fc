"""Following every stream's hash chain through the log, in store order, for `audit verify`.

Each record must carry the hash of its content, sit in the stream its content names, come
as the next version of that stream and link (`prev_hash`) to the record before. A record
in orderlog's exact layout that checks out is confirmed from a few top-level members (the
fast path); anything else is parsed in full and what is wrong is named: which stream and
version, at which store position, and what (its hash, its place, its link).

A version that comes too early leaves a gap; if the missing version turns up later, both
records are named as reordered, not the first as removed. Only gaps never filled are named
as records removed from the log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orderlog.audit.log import LogEntry, entry_from_row, quick_fields, sealed_digest
from orderlog.audit_verify import GENESIS_HASH, leaf_hash
from orderlog.domain.stream import stream_id
from orderlog.domain.streams import STREAMS

Row = tuple[int, str, int, str, bytes]
"""(store position, originator id hex, version, topic, state) of one stored record."""
Chain = tuple[str, str, int, str]
"""(stream, key, version, hash) of the latest record of a stream seen so far."""


@dataclass
class Divergence:
    where: str
    what: str
    position: int | None = None
    """Store position of the record named; None for what has none (the persisted map)."""

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass
class Gap:
    """Versions `first` to `last` of a stream, missing where its version `came` (`label`,
    at store `position`) came too early; they may yet turn up later in the log. The links
    around it are kept to be checked when they do: the hash version `first` must link to
    (`link_before`, "" when unknown) and the link the record after `last` states
    (`link_after`)."""

    first: int
    last: int
    came: int
    label: str
    position: int
    link_before: str = ""
    link_after: str = ""
    after_label: str = ""
    after_position: int | None = None


class Chains:
    def __init__(self, diverge: Callable[[Divergence], None]):
        self.heads: dict[str, Chain] = {}
        """Stream id (hex) -> its latest record seen; its version is the stream's count."""
        self._diverge = diverge
        self._gaps: dict[str, list[Gap]] = {}

    def check(self, row: Row) -> tuple[str, bytes]:
        """Checks one stored record; returns its recomputed hash (hex) and its Merkle leaf.

        Fast path: a record in orderlog's exact layout whose hash, stream, version and link
        all check out is confirmed from a few top-level members. Anything else goes the
        careful way (full parse), which names what is wrong; both demand the same things.
        """
        position, originator_id, version, topic, state = row
        digest = sealed_digest(state)
        recomputed = digest.hex()
        quick = quick_fields(state)
        if quick is not None:
            key, prev_hash, stream, stated_version, stored_hash = quick
            previous = self.heads.get(originator_id)
            linked = (
                (stated_version == 1 and prev_hash == GENESIS_HASH and stream_id(stream, key).hex == originator_id)
                if previous is None
                else (stated_version == previous[2] + 1 and prev_hash == previous[3] and key == previous[1])
            )
            if (
                linked
                and stored_hash == recomputed
                and stated_version == version
                and topic.startswith(stream)
                and topic[len(stream)] == "/"
            ):
                self.heads[originator_id] = (stream, key, version, stored_hash)
                return recomputed, hashlib.sha256(b"\x00" + digest).digest()
        entry = entry_from_row(*row)
        for what in self._record_problems(entry):
            self._diverge(Divergence(entry.label, what, position))
        return entry.recomputed, leaf_hash(entry.recomputed)

    def finish(self) -> None:
        """After the pass: every gap never filled is a removal."""
        for gaps in self._gaps.values():
            for gap in gaps:
                missing = f"version {gap.first}" if gap.first == gap.last else f"versions {gap.first}-{gap.last}"
                what = f"{missing} of this stream is missing: removed from the log"
                self._diverge(Divergence(gap.label, what, gap.position))

    def _record_problems(self, entry: LogEntry) -> list[str]:
        """What is wrong with one record and its link to the one before; follows the chain."""
        heads = self.heads
        if entry.record is None:  # its hash is unknown: the next record's link cannot be judged
            previous_key = heads.get(entry.originator_id, ("", "?"))[1]
            heads[entry.originator_id] = (entry.topic.partition("/")[0], previous_key, entry.version, "")
            return [entry.problem]
        record, problems = entry.record, []
        if entry.problem:
            problems.append(entry.problem)
        elif record["hash"] != entry.recomputed:
            problems.append("its hash does not match its content: the record was altered after it was written")
        stream, key, stored_stream = record.get("stream"), record.get("key"), entry.topic.partition("/")[0]
        if stream != stored_stream or record.get("version") != entry.version:
            problems.append(
                f"the record says {stream} version {record.get('version')} but is stored as "
                f"{stored_stream} version {entry.version}: it was moved"
            )
        previous = heads.get(entry.originator_id)
        if previous is None:
            if stream in STREAMS and isinstance(key, str) and stream_id(stream, key).hex != entry.originator_id:
                problems.append(f"the record names {stream} {key}, which is not the stream it is stored in")
            expected_version, expected_link = 1, GENESIS_HASH
        else:
            if key != previous[1] and previous[1] != "?":
                problems.append(f"the record names {stream} {key}, but its stream holds {previous[0]} {previous[1]}")
            expected_version, expected_link = previous[2] + 1, previous[3]
        if entry.version < expected_version:  # the chain stays at its latest version
            problems.append(self._late(entry, record, expected_version - 1))
            return problems
        if entry.version > expected_version:
            self._gaps.setdefault(entry.originator_id, []).append(
                Gap(
                    expected_version,
                    entry.version - 1,
                    entry.version,
                    entry.label,
                    entry.position,
                    link_before=expected_link,
                    link_after=str(record.get("prev_hash")),
                    after_label=entry.label,
                    after_position=entry.position,
                )
            )
        elif expected_link and record.get("prev_hash") != expected_link:
            problems.append(
                f"its prev_hash does not link to version {entry.version - 1}"
                if entry.version > 1
                else "its prev_hash is not the genesis hash"
            )
        heads[entry.originator_id] = (str(stream), str(key), entry.version, str(record["hash"]))
        return problems

    def _late(self, entry: LogEntry, record: dict[str, Any], latest: int) -> str:
        """A version older than the stream's latest: reordered if it fills a gap (its links to
        the records around the gap checked too), else repeated."""
        gaps = self._gaps.get(entry.originator_id, [])
        gap = next((gap for gap in gaps if gap.first <= entry.version <= gap.last), None)
        if gap is None:
            return f"it comes after version {latest} of its stream: repeated or reordered"
        gaps.remove(gap)
        stored_hash, stated_link = str(record.get("hash")), str(record.get("prev_hash"))
        below = Gap(gap.first, entry.version - 1, gap.came, gap.label, gap.position, gap.link_before, stated_link)
        above = Gap(entry.version + 1, gap.last, gap.came, gap.label, gap.position, stored_hash, gap.link_after)
        below.after_label, below.after_position = entry.label, entry.position
        above.after_label, above.after_position = gap.after_label, gap.after_position
        gaps += [part for part in (below, above) if part.first <= part.last]
        self._check_links_around(entry, gap, stored_hash, stated_link)
        self._diverge(
            Divergence(
                gap.label,
                f"it comes before version {entry.version} of its stream, which is at store position "
                f"{entry.position}: the records were reordered",
                gap.position,
            )
        )
        return (
            f"it comes after version {gap.came} of its stream (store position {gap.position}): "
            "the records were reordered"
        )

    def _check_links_around(self, entry: LogEntry, gap: Gap, stored_hash: str, stated_link: str) -> None:
        """A late record that fills the start of a gap must link to the record before the gap,
        and the record after the gap must link to one that fills its end: a reordered record
        is no excuse for a broken chain."""
        if entry.version == gap.first and gap.link_before and stated_link != gap.link_before:
            what = (
                f"its prev_hash does not link to version {entry.version - 1}"
                if entry.version > 1
                else "its prev_hash is not the genesis hash"
            )
            self._diverge(Divergence(entry.label, what, entry.position))
        if entry.version == gap.last and gap.after_position is not None and gap.link_after != stored_hash:
            what = f"its prev_hash does not link to version {entry.version}"
            self._diverge(Divergence(gap.after_label, what, gap.after_position))
