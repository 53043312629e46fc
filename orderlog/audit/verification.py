"""`audit verify`: recompute everything and say where, if anywhere, the log diverges.

One pass over the log in store order:
- every record's hash is recomputed from its content (RFC 8785 canonical JSON, SHA-256);
- every stream's chain is followed: versions 1, 2, 3... each `prev_hash` the hash of the
  record before;
- every record must sit in the stream its content names;
- the Merkle tree is rebuilt from the recomputed hashes and compared, leaf by leaf, with the
  tree persisted at the last checkpoint;
- each checkpoint given (and each one the store kept) is checked: its signature, the
  rebuilt root at its size, and an RFC 9162 consistency proof that today's log extends it.

An edit that recomputes every hash and the persisted tree leaves no trace inside the store;
only a checkpoint kept elsewhere catches it, which is why checkpoints are meant to leave.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from orderlog.application import OrderLog
from orderlog.audit.log import LogEntry, entry_from_row, quick_fields, sealed_digest
from orderlog.audit.merkle import Frontier
from orderlog.audit.tree import Leaf, PersistedTree
from orderlog.audit_verify import (
    EMPTY_TREE_HASH,
    GENESIS_HASH,
    leaf_hash,
    verify_checkpoint,
    verify_consistency,
)
from orderlog.domain.stream import stream_id
from orderlog.domain.streams import STREAMS

KEPT_DIVERGENCES = 50
CHUNK_LEVEL = 10
CHUNK = 1 << CHUNK_LEVEL
"""The log is compared with the persisted tree 1,024 leaves at a time (one stored node each);
only a chunk whose node differs is compared leaf by leaf."""


@dataclass
class Divergence:
    where: str
    what: str
    position: int | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass
class CheckpointCheck:
    origin: str
    tree_size: int
    root_hash: str
    signature: str
    problems: list[str] = field(default_factory=list)
    consistency_hashes: int | None = None

    def __str__(self) -> str:
        head = f"checkpoint {self.origin} (tree_size {self.tree_size}): signature {self.signature}"
        if self.problems:
            return f"{head}; FAILED: {'; '.join(self.problems)}"
        proof = (
            f", consistency proof of {self.consistency_hashes} hashes verified"
            if self.consistency_hashes is not None
            else ""
        )
        return f"{head}; the log extends it{proof}"


@dataclass
class Verification:
    events: int = 0
    orders: int = 0
    streams: int = 0
    root: str = EMPTY_TREE_HASH.hex()
    divergences: list[Divergence] = field(default_factory=list)
    divergence_count: int = 0
    checkpoints: list[CheckpointCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.divergence_count == 0 and not any(c.problems for c in self.checkpoints)

    def headline(self) -> str:
        if self.ok:
            return f"verified {self.events} events in {self.orders} orders, root {self.root}"
        if self.divergences:
            return f"FAILED: {self.divergences[0]}"
        failed = next(c for c in self.checkpoints if c.problems)
        return f"FAILED: the log does not extend checkpoint {failed.origin} (details below)"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "headline": self.headline()}


def verify_store(
    app: OrderLog, checkpoints: list[tuple[str, dict[str, Any]]], public_key_pem: str | None
) -> Verification:
    tree = PersistedTree(app.database)
    persisted_size = tree.size()
    wanted_sizes = {checkpoint["tree_size"] for _, checkpoint in checkpoints} | {persisted_size}
    result = Verification()
    roots = {0: EMPTY_TREE_HASH}
    frontier = Frontier.empty()
    chains: dict[str, tuple[str, str, int, str]] = {}  # stream id -> (stream, key, version, hash)
    persisted_chunks = tree.level_nodes(CHUNK_LEVEL)
    chunk: list[tuple[tuple[int, str, int, str, bytes], str]] = []  # the rows of the chunk being read
    for row in app.database.log():
        recomputed, leaf = _check_row(row, chains, result)
        chunk.append((row, recomputed))
        for level, index, digest in frontier.append(leaf):
            if level == CHUNK_LEVEL:  # a chunk of the log is complete: does the persisted tree agree?
                if persisted_chunks.get(index, digest) != digest or (
                    index not in persisted_chunks and index * CHUNK < persisted_size
                ):
                    _compare_leaves(result, tree, index * CHUNK, chunk, persisted_size)
                chunk = []
        if frontier.size in wanted_sizes:
            roots[frontier.size] = frontier.root()
    _compare_leaves(result, tree, frontier.size - len(chunk), chunk, persisted_size)
    if persisted_size > frontier.size:
        ((index, (position, stream, key, version, _hash)),) = tree.leaves(frontier.size, 1)
        _diverge(
            result,
            Divergence(
                f"{stream} {key} version {version} (store position {position})",
                f"the tree built at the last checkpoint holds {persisted_size} records but the log holds only "
                f"{frontier.size}: this record (leaf {index}) and any after it were removed",
                position,
            ),
        )
    result.divergences.sort(key=lambda divergence: divergence.position or 0)
    del result.divergences[KEPT_DIVERGENCES:]
    result.events = frontier.size
    result.root = frontier.root().hex()
    result.streams = len(chains)
    result.orders = sum(1 for chain in chains.values() if chain[0] == "order")
    result.checkpoints = [
        _check_checkpoint(
            origin,
            checkpoint=checkpoint,
            public_key_pem=public_key_pem,
            roots=roots,
            tree=tree,
            persisted_size=persisted_size,
        )
        for origin, checkpoint in checkpoints
    ]
    return result


def _check_row(
    row: tuple[int, str, int, str, bytes], chains: dict[str, tuple[str, str, int, str]], result: Verification
) -> tuple[str, bytes]:
    """Checks one stored record; returns its recomputed hash (hex) and its Merkle leaf.

    Fast path: a record in orderlog's exact layout whose hash, stream, version and link all
    check out is confirmed from a few top-level members. Anything else goes the careful way
    (full parse), which names what is wrong; both demand the same things.
    """
    position, originator_id, version, topic, state = row
    digest = sealed_digest(state)
    recomputed = digest.hex()
    quick = quick_fields(state)
    if quick is not None:
        key, prev_hash, stream, stated_version, stored_hash = quick
        previous = chains.get(originator_id)
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
            chains[originator_id] = (stream, key, version, stored_hash)
            return recomputed, hashlib.sha256(b"\x00" + digest).digest()
    entry = entry_from_row(*row)
    for what in _record_problems(entry, chains):
        _diverge(result, Divergence(entry.label, what, position))
    return entry.recomputed, leaf_hash(entry.recomputed)


def _diverge(result: Verification, divergence: Divergence) -> None:
    """Counts every divergence, keeps the earliest ones (in store order)."""
    result.divergence_count += 1
    result.divergences.append(divergence)
    if len(result.divergences) > 10 * KEPT_DIVERGENCES:
        result.divergences.sort(key=lambda kept: kept.position or 0)
        del result.divergences[KEPT_DIVERGENCES:]


def _compare_leaves(
    result: Verification,
    tree: PersistedTree,
    start: int,
    rows: list[tuple[tuple[int, str, int, str, bytes], str]],
    persisted_size: int,
) -> None:
    """Leaf by leaf, the log's rows from leaf `start` against the persisted tree's leaves."""
    count = min(len(rows), persisted_size - start)
    if count <= 0:
        return
    for (_index, leaf), (row, recomputed) in zip(tree.leaves(start, count), rows, strict=False):
        position = row[0]
        if (leaf[0], leaf[4]) != (position, recomputed):
            label = entry_from_row(*row).label
            _diverge(result, Divergence(label, _differs_from_tree(leaf, position), position))


def _differs_from_tree(leaf: Leaf, position_now: int) -> str:
    position, stream, key, version, _hash = leaf
    if position == position_now:
        return "its hash differs from the one the Merkle tree recorded at checkpoint time: altered since"
    return (
        f"the Merkle tree recorded {stream} {key} version {version} (store position {position}) at this place "
        "in the log: records were removed, inserted or moved since"
    )


def _record_problems(entry: LogEntry, chains: dict[str, tuple[str, str, int, str]]) -> list[str]:
    """What is wrong with one record and its link to the one before; updates `chains`."""
    if entry.record is None:  # its hash is unknown: the next record's link cannot be judged
        previous_key = chains.get(entry.originator_id, ("", "?"))[1]
        chains[entry.originator_id] = (entry.topic.partition("/")[0], previous_key, entry.version, "")
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
    previous = chains.get(entry.originator_id)
    if previous is None:
        if stream in STREAMS and isinstance(key, str) and stream_id(stream, key).hex != entry.originator_id:
            problems.append(f"the record names {stream} {key}, which is not the stream it is stored in")
        expected_version, expected_link = 1, GENESIS_HASH
    else:
        if key != previous[1] and previous[1] != "?":
            problems.append(f"the record names {stream} {key}, but its stream holds {previous[0]} {previous[1]}")
        expected_version, expected_link = previous[2] + 1, previous[3]
    if entry.version > expected_version:
        missing = (
            f"version {expected_version}"
            if entry.version == expected_version + 1
            else f"versions {expected_version}-{entry.version - 1}"
        )
        problems.append(f"{missing} of this stream is missing: removed from the log")
    elif entry.version < expected_version:
        problems.append(f"it comes after version {expected_version - 1} of its stream: reordered or repeated")
    elif expected_link and record.get("prev_hash") != expected_link:
        problems.append(
            f"its prev_hash does not link to version {entry.version - 1}"
            if entry.version > 1
            else "its prev_hash is not the genesis hash"
        )
    chains[entry.originator_id] = (str(stream), str(key), entry.version, str(record["hash"]))
    return problems


def _check_checkpoint(
    origin: str,
    *,
    checkpoint: dict[str, Any],
    public_key_pem: str | None,
    roots: dict[int, bytes],
    tree: PersistedTree,
    persisted_size: int,
) -> CheckpointCheck:
    size, claimed = checkpoint["tree_size"], checkpoint["root_hash"]
    check = CheckpointCheck(origin, size, claimed, "not checked (no public key given)")
    if public_key_pem is not None:
        signature_problems = verify_checkpoint(checkpoint, public_key_pem)
        check.signature = "valid" if not signature_problems else "INVALID"
        check.problems += signature_problems
    if size not in roots:
        check.problems.append(f"it covers {size} records but the log holds fewer: records were removed")
        return check
    if roots[size].hex() != claimed:
        check.problems.append(
            f"the log's first {size} records now hash to root {roots[size].hex()}, not {claimed}: records were "
            "altered, removed or inserted since it was issued (even if every hash was recomputed)"
        )
        return check
    if 0 < size <= persisted_size and persisted_size in roots:
        try:
            proof = tree.consistency(size, persisted_size)
        except LookupError as error:
            check.problems.append(str(error))
            return check
        if verify_consistency(size, persisted_size, bytes.fromhex(claimed), roots[persisted_size], proof):
            check.consistency_hashes = len(proof)
        else:
            check.problems.append(
                f"the consistency proof from size {size} to {persisted_size} does not verify: "
                "the persisted tree was altered"
            )
    return check
