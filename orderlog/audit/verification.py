"""`audit verify`: recompute everything and say where, if anywhere, the log diverges.

One pass over the log in store order:
- every record's hash is recomputed from its content (RFC 8785 canonical JSON, SHA-256);
- every stream's chain is followed (orderlog.audit.chains): versions 1, 2, 3... each
  `prev_hash` the hash of the record before, each record in the stream its content names;
- the Merkle tree is rebuilt from the recomputed hashes and compared, leaf by leaf, with the
  tree persisted at the last checkpoint; a record found elsewhere than the tree recorded it
  is named as moved (or swapped, naming the other record);
- the map of stream heads is rebuilt from the chains and compared with the persisted map
  at each size it was built at (orderlog.audit.map_verification);
- each checkpoint given (and each one the store kept) is checked: first the checkpoint
  itself (its shape and, with the log's public key, its signature: a checkpoint that fails
  is named invalid, and the log is not blamed for it), then the rebuilt root and map root at
  its size, and an RFC 9162 consistency proof that the persisted tree extends it.

An edit that recomputes every hash and the persisted tree and map leaves no trace inside
the store; only a checkpoint kept elsewhere catches it, which is why checkpoints are meant
to leave.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from orderlog.audit.chains import Chains, Divergence, Row
from orderlog.audit.log import entry_from_row
from orderlog.audit.map_verification import MapVerification
from orderlog.audit.merkle import Frontier, perfect_root
from orderlog.audit.persisted_map import PersistedMap
from orderlog.audit.tree import Leaf, PersistedTree
from orderlog.audit_verify import EMPTY_TREE_HASH, Unreadable, check_checkpoint, verify_checkpoint, verify_consistency

if TYPE_CHECKING:
    from orderlog.application import OrderLog

KEPT_DIVERGENCES = 50
CHUNK_LEVEL = 10
CHUNK = 1 << CHUNK_LEVEL
"""The log is compared with the persisted tree 1,024 leaves at a time (one stored node each);
only a chunk whose node differs is compared leaf by leaf."""
NOT_CHECKED = "not checked (no public key given)"

__all__ = ["CheckpointCheck", "Divergence", "Verification", "verify_store"]


@dataclass
class CheckpointCheck:
    origin: str
    tree_size: Any
    root_hash: Any
    signature: str
    invalid: str = ""
    """Why the checkpoint itself is not valid (then the log was not compared with it)."""
    problems: list[str] = field(default_factory=list)
    """Where the log does not match a checkpoint that is valid, or whose signature was not checked."""
    consistency_hashes: int | None = None
    map_root_checked: bool = False

    def __str__(self) -> str:
        head = f"checkpoint {self.origin} (tree_size {self.tree_size}): signature {self.signature}"
        if self.invalid:
            return f"{head}; FAILED: this checkpoint is invalid: {self.invalid}; the log was not compared with it"
        if self.problems:
            return f"{head}; FAILED: {'; '.join(self.problems)}"
        proof = (
            f", consistency proof of {self.consistency_hashes} hashes verified"
            if self.consistency_hashes is not None
            else ""
        )
        heads = (
            ", map of stream heads verified"
            if self.map_root_checked
            else "; it has no map_root (issued before the map of stream heads): proofs against it show inclusion, "
            "not completeness"
        )
        return f"{head}; the log extends it{proof}{heads}"


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
        return self.divergence_count == 0 and not any(c.invalid or c.problems for c in self.checkpoints)

    def headline(self) -> str:
        if self.ok:
            return f"verified {self.events} events in {self.orders} orders, root {self.root}"
        if self.divergences:
            return f"FAILED: {self.divergences[0]}"
        failed = next(c for c in self.checkpoints if c.invalid or c.problems)
        if failed.invalid:
            return f"FAILED: checkpoint {failed.origin} is invalid: {failed.invalid}"
        if failed.signature == NOT_CHECKED:
            return (
                f"FAILED: the log does not match checkpoint {failed.origin}, whose signature was not checked "
                "(no public key given): the log was altered, or the checkpoint is not this log's (details below)"
            )
        return f"FAILED: the log does not extend checkpoint {failed.origin} (details below)"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "headline": self.headline()}


def verify_store(
    app: OrderLog, checkpoints: list[tuple[str, dict[str, Any]]], public_key_pem: str | None
) -> Verification:
    with _collector_paused():
        return _verify(app, checkpoints, public_key_pem)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The pass keeps hundreds of thousands of small objects alive (a chain head per stream,
    the map's entries and nodes), none in a cycle; each full collection would walk them all
    again and find nothing. Reference counting still frees everything meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _verify(app: OrderLog, checkpoints: list[tuple[str, dict[str, Any]]], public_key_pem: str | None) -> Verification:
    result = Verification()
    checks = [_check_itself(origin, checkpoint, public_key_pem) for origin, checkpoint in checkpoints]
    valid = [
        (check, checkpoint) for check, (_, checkpoint) in zip(checks, checkpoints, strict=True) if not check.invalid
    ]
    tree = PersistedTree(app.database)
    persisted_size = tree.size()
    wanted_sizes = {checkpoint["tree_size"] for _, checkpoint in valid} | {persisted_size}
    heads = MapVerification(PersistedMap(app.database), {c["tree_size"] for _, c in valid if "map_root" in c})
    roots = {0: EMPTY_TREE_HASH}
    frontier = Frontier.empty()  # of the complete chunks read so far
    chains = Chains(lambda divergence: _diverge(result, divergence))
    check_row, touched, map_sizes = chains.check, set(), heads.sizes
    if 0 in map_sizes:
        heads.at_size(0, [])
    persisted_chunks = tree.level_nodes(CHUNK_LEVEL)
    chunk: list[tuple[Row, str]] = []  # the rows of the chunk being read
    leaves: list[bytes] = []  # and their leaves
    for row in app.log_reader.rows():
        recomputed, leaf = check_row(row)
        touched.add(row[1])
        chunk.append((row, recomputed))
        leaves.append(leaf)
        if len(leaves) == CHUNK:  # a chunk of the log is complete: does the persisted tree agree?
            digest, index = perfect_root(leaves), frontier.size >> CHUNK_LEVEL
            persisted = index * CHUNK < persisted_size
            if (
                persisted_chunks.get(index, digest) != digest
                or (persisted and index not in persisted_chunks)
                or (persisted and tree.positions(index * CHUNK, CHUNK) != [row[0] for row, _ in chunk])
            ):
                _compare_leaves(result, tree, index * CHUNK, chunk, persisted_size)
            frontier.append_subtree(CHUNK_LEVEL, digest)
            chunk, leaves = [], []
        size = frontier.size + len(leaves)
        if size in wanted_sizes:
            roots[size] = _root(frontier, leaves)
        if size in map_sizes:
            heads.at_size(size, [chains.heads[stream] for stream in touched])
            touched.clear()
    size = frontier.size + len(leaves)
    _compare_leaves(result, tree, frontier.size, chunk, persisted_size)
    chains.finish()
    heads.finish(size, {c["tree_size"]: c["map_root"] for _, c in valid if "map_root" in c})
    for where, what in heads.divergences:
        _diverge(result, Divergence(where, what))
    if persisted_size > size:
        ((index, (position, stream, key, version, _hash)),) = tree.leaves(size, 1)
        _diverge(
            result,
            Divergence(
                f"{stream} {key} version {version} (store position {position})",
                f"the tree built at the last checkpoint holds {persisted_size} records but the log holds only "
                f"{size}: this record (leaf {index}) and any after it were removed",
                position,
            ),
        )
    _keep_earliest(result.divergences)
    result.events = size
    result.root = _root(frontier, leaves).hex()
    result.streams = len(chains.heads)
    result.orders = sum(1 for chain in chains.heads.values() if chain[0] == "order")
    for check, checkpoint in valid:
        _compare_with_log(check, checkpoint, roots=roots, map_roots=heads.roots, tree=tree, log_size=size)
    result.checkpoints = checks
    return result


def _root(frontier: Frontier, leaves: list[bytes]) -> bytes:
    """The root of the log read so far: complete chunks and the leaves of the one being read."""
    whole = frontier.copy()
    whole.extend(leaves)
    return whole.root()


def _diverge(result: Verification, divergence: Divergence) -> None:
    """Counts every divergence, keeps the earliest ones (in store order)."""
    result.divergence_count += 1
    result.divergences.append(divergence)
    if len(result.divergences) > 10 * KEPT_DIVERGENCES:
        _keep_earliest(result.divergences)


def _keep_earliest(divergences: list[Divergence]) -> None:
    """The first KEPT_DIVERGENCES in store order; those without a position (the map's) last."""
    divergences.sort(key=lambda kept: (kept.position is None, kept.position or 0))
    del divergences[KEPT_DIVERGENCES:]


# ---------------------------------------------------------------- the log against the persisted tree


def _compare_leaves(
    result: Verification, tree: PersistedTree, start: int, rows: list[tuple[Row, str]], persisted_size: int
) -> None:
    """Leaf by leaf, the log's rows from leaf `start` against the persisted tree's leaves."""
    count = min(len(rows), persisted_size - start)
    if count <= 0:
        return
    leaves = [leaf for _index, leaf in tree.leaves(start, count)]
    recorded_at = {leaf[4]: leaf for leaf in leaves}  # record hash -> where the tree recorded it
    found_at = {recomputed: row[0] for row, recomputed in rows}  # record hash -> where it is now
    for leaf, (row, recomputed) in zip(leaves, rows, strict=False):
        if (leaf[0], leaf[4]) != (row[0], recomputed):
            entry = entry_from_row(*row)
            now = (entry.record or {}).get("stream"), (entry.record or {}).get("key"), entry.version
            what = _differs_from_tree(leaf, row[0], now, recorded_at.get(recomputed), found_at.get(leaf[4]))
            _diverge(result, Divergence(entry.label, what, row[0]))


def _differs_from_tree(
    leaf: Leaf, position: int, now: tuple[Any, Any, int], recorded_here: Leaf | None, moved_to: int | None
) -> str:
    """What the record at `position` (stream, key, version `now`) is, against the leaf the
    tree recorded there: the same record altered, or another record moved here (from
    where the tree `recorded_here` it), swapped with the one the tree recorded here (now at
    `moved_to`), or records removed or inserted before it."""
    leaf_position, stream, key, version, _hash = leaf
    recorded = f"{stream} {key} version {version} (store position {leaf_position})"
    if leaf_position == position and now == (stream, key, version):
        return "its hash differs from the one the Merkle tree recorded at checkpoint time: altered since"
    if recorded_here == leaf:
        return (
            f"the Merkle tree recorded it, in this place in the log, at store position {leaf_position}: the "
            "log's positions were changed since the checkpoint (proofs look records up by position)"
        )
    if recorded_here is not None and recorded_here[0] == moved_to:
        return (
            f"it and {stream} {key} version {version} swapped places since the checkpoint: the Merkle tree "
            f"recorded that record at this store position and this one at store position {moved_to}"
        )
    if recorded_here is not None:
        return (
            f"the Merkle tree recorded it at store position {recorded_here[0]}, and {recorded} here: "
            "records were moved since the checkpoint"
        )
    if leaf_position == position:
        return (
            f"the Merkle tree recorded {recorded} at this store position; it now holds another record: "
            "records were replaced, moved, removed or inserted since"
        )
    return (
        f"the Merkle tree recorded {recorded} at this place in the log: records were removed, inserted or moved since"
    )


# ---------------------------------------------------------------- checkpoints


def _check_itself(origin: str, checkpoint: dict[str, Any], public_key_pem: str | None) -> CheckpointCheck:
    """A checkpoint's own validity: its shape, then (with the log's public key) its signature."""
    size, root = (
        (checkpoint.get("tree_size"), checkpoint.get("root_hash")) if isinstance(checkpoint, dict) else (None, None)
    )
    check = CheckpointCheck(origin, size, root, NOT_CHECKED)
    try:
        check_checkpoint(checkpoint, "")
    except Unreadable as error:
        check.invalid = str(error)
        return check
    if public_key_pem is not None:
        problems = verify_checkpoint(checkpoint, public_key_pem)
        check.signature = "INVALID" if problems else "valid"
        check.invalid = "; ".join(problems)
    return check


def _compare_with_log(
    check: CheckpointCheck,
    checkpoint: dict[str, Any],
    *,
    roots: dict[int, bytes],
    map_roots: dict[int, bytes],
    tree: PersistedTree,
    log_size: int,
) -> None:
    """Does the log still hold what a (valid or unchecked) checkpoint signed? Only a
    checkpoint whose signature checked out is proof that the log changed; for an unchecked
    one, each problem says that the checkpoint may not be this log's."""
    size, claimed = checkpoint["tree_size"], checkpoint["root_hash"]
    unsure = (
        "" if check.signature == "valid" else ", or the checkpoint is not this log's (its signature was not checked)"
    )
    if size > log_size:
        check.problems.append(
            f"it covers {size} records but the log holds only {log_size}: records were removed{unsure}"
        )
        return
    if roots[size].hex() != claimed:
        check.problems.append(
            f"the log's first {size} records now hash to root {roots[size].hex()}, not {claimed}: records were "
            f"altered, removed or inserted since it was issued (even if every hash was recomputed){unsure}"
        )
        return
    if "map_root" in checkpoint:
        if map_roots[size].hex() != checkpoint["map_root"]:
            check.problems.append(
                f"its map_root {checkpoint['map_root']} is not the map of the log's stream heads at this size "
                f"({map_roots[size].hex()}), though its root_hash is the log's{unsure}"
            )
            return
        check.map_root_checked = True
    persisted_size = tree.size()
    if 0 < size <= persisted_size and persisted_size in roots:
        try:
            proof = tree.consistency(size, persisted_size)
        except LookupError as error:
            check.problems.append(str(error))
            return
        if verify_consistency(size, persisted_size, bytes.fromhex(claimed), roots[persisted_size], proof):
            check.consistency_hashes = len(proof)
        else:
            check.problems.append(
                f"the consistency proof from size {size} to {persisted_size} does not verify: "
                "the persisted tree was altered"
            )
