"""The map of stream heads: for every stream of the log (an order, a SKU, a customer, a
source), how many records it has and the hash of its last one, as a Merkle tree whose root
each checkpoint signs beside the log's root. The hash rules (a stream's bucket, a bucket's
leaf, a path's root) live in orderlog.audit_verify, with the offline check of a map proof;
this module builds.

Why a map: an inclusion proof shows that records are in the log, never that none were left
off the end. The signed map gives the order's count and head, and the chain from version 1
to that head leaves no room for a missing record (immudb's verified reads and Trillian's
verifiable maps do the same).

The tree has a fixed shape: 65,536 bucket leaves under 16 levels, addressed (level, index),
level 0 the leaves and level 16 the root. A change to one stream changes one leaf and the
16 nodes above it, so each checkpoint recomputes only the buckets of streams touched since
the one before. A subtree of empty buckets has a fixed hash (EMPTY_NODES[level]): only
nodes over non-empty buckets are ever stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from orderlog.audit_verify import EMPTY_BUCKET_HASH, MAP_DEPTH, MapEntry, bucket_leaf_hash, map_bucket, node_hash

Coordinate = tuple[int, int]
StreamName = tuple[str, str]
"""(stream, key), e.g. ("order", "SO-1")."""
Head = tuple[int, str]
"""(record count, hash of the last record) of one stream."""
MapRow = tuple[str, str, int, int, str]
"""(stream, key, bucket, count, head) of one stream, as the persisted map stores it."""

ROOT: Coordinate = (MAP_DEPTH, 0)

EMPTY_NODES = [EMPTY_BUCKET_HASH]
for _level in range(MAP_DEPTH):
    EMPTY_NODES.append(node_hash(EMPTY_NODES[-1], EMPTY_NODES[-1]))


def bucket_entries(heads: Mapping[StreamName, Head]) -> list[MapEntry]:
    """A bucket's entries in the order its leaf hashes them: by stream, then key."""
    return sorted((stream, key, count, head) for (stream, key), (count, head) in heads.items())


def sibling_coordinates(buckets: Iterable[int]) -> set[Coordinate]:
    """The nodes beside the paths from `buckets` up to the root: what recomputing those
    paths reads (the nodes on the paths themselves are recomputed)."""
    needed: set[Coordinate] = set()
    indices = set(buckets)
    for level in range(MAP_DEPTH):
        needed |= {(level, index ^ 1) for index in indices if index ^ 1 not in indices}
        indices = {index >> 1 for index in indices}
    return needed


def path_coordinates(buckets: Iterable[int]) -> set[Coordinate]:
    """The nodes on the paths from `buckets` to the root, the root included."""
    return {(level, bucket >> level) for bucket in buckets for level in range(MAP_DEPTH + 1)}


def recompute(leaves: Mapping[int, bytes], node: Callable[[Coordinate], bytes]) -> dict[Coordinate, bytes]:
    """Every node on the paths from changed bucket leaves (bucket -> new leaf hash) to the
    root, reading the others (their siblings) from `node`."""
    made = {(0, bucket): leaf for bucket, leaf in leaves.items()}
    current = dict(leaves)
    for level in range(MAP_DEPTH):
        parents = {}
        for index in {child >> 1 for child in current}:
            left, right = 2 * index, 2 * index + 1
            parents[index] = node_hash(
                current[left] if left in current else node((level, left)),
                current[right] if right in current else node((level, right)),
            )
        made.update(((level + 1, index), digest) for index, digest in parents.items())
        current = parents
    return made


def map_path(bucket: int, node: Callable[[Coordinate], bytes]) -> list[bytes]:
    """The 16 sibling hashes from a bucket's leaf up to the root, lowest first."""
    return [node((level, (bucket >> level) ^ 1)) for level in range(MAP_DEPTH)]


class StreamMap:
    """The whole map in memory, recomputed bucket by bucket: verification rebuilds it from
    the log this way, in its single pass, at each size it wants a root for."""

    def __init__(self) -> None:
        self.rows: dict[StreamName, MapRow] = {}
        """Each stream's (stream, key, bucket, count, head), as the persisted map stores it."""
        self.nodes: dict[Coordinate, bytes] = {}
        self._members: dict[int, list[StreamName]] = {}
        self._dirty: set[int] = set()

    def put(self, heads: Iterable[tuple[str, str, int, str]]) -> None:
        """Sets the (stream, key, count, head) of streams."""
        rows, members, dirty = self.rows, self._members, self._dirty
        for stream, key, count, head in heads:
            name = (stream, key)
            known = rows.get(name)
            if known is None:
                bucket = map_bucket(stream, key)
                members.setdefault(bucket, []).append(name)
            else:
                bucket = known[2]
            rows[name] = (stream, key, bucket, count, head)
            dirty.add(bucket)

    def head(self, name: StreamName) -> Head | None:
        row = self.rows.get(name)
        return None if row is None else (row[3], row[4])

    def bucket_of(self, name: StreamName) -> int:
        row = self.rows.get(name)
        return map_bucket(*name) if row is None else row[2]

    def entries(self, bucket: int) -> list[MapEntry]:
        rows = self.rows
        return sorted(
            [(row[0], row[1], row[3], row[4]) for row in map(rows.__getitem__, self._members.get(bucket, ()))]
        )

    def node(self, coordinate: Coordinate) -> bytes:
        return self.nodes.get(coordinate) or EMPTY_NODES[coordinate[0]]

    def update(self) -> dict[Coordinate, bytes]:
        """Recomputes the buckets changed since the last update and the nodes above them;
        returns those nodes."""
        leaves = {bucket: bucket_leaf_hash(self.entries(bucket)) for bucket in self._dirty}
        made = recompute(leaves, self.node)
        self.nodes.update(made)
        self._dirty.clear()
        return made

    def root(self) -> bytes:
        self.update()
        return self.node(ROOT)
