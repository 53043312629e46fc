"""The persisted map of stream heads (orderlog.audit.stream_map): its bucket entries and
nodes as of every checkpoint size, so that a checkpoint recomputes only the buckets of
streams touched since the last one, and a proof against any checkpoint the store issued
reads one bucket and 16 nodes.

Every row holds the tree size from which it is true (the size of the checkpoint that wrote
it). The map at size N is, for each stream and each node, its row with the largest tree
size <= N; a node without one is the empty subtree's. Rows are only ever added.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from orderlog.audit import AuditError
from orderlog.audit.stream_map import (
    EMPTY_NODES,
    ROOT,
    Coordinate,
    Head,
    StreamName,
    bucket_entries,
    map_path,
    recompute,
    sibling_coordinates,
)
from orderlog.audit.tree import Leaf
from orderlog.audit_verify import MAP_DEPTH, bucket_leaf_hash, map_bucket
from orderlog.store.database import Database

IN_LIST = 500
"""Values per SQL IN list."""


@dataclass(slots=True)
class HeadChange:
    """A stream's records added since the map was last advanced: from `first_version`
    (at store position `first_position`) to `count`, whose hash is `head`."""

    first_version: int
    first_position: int
    count: int
    head: str


def head_changes(leaves: Iterable[Leaf]) -> dict[StreamName, HeadChange]:
    """The new head of every stream among `leaves` (in log order). Refuses a stream whose
    versions do not run on one by one: the map must not record a count over a gap."""
    changes: dict[StreamName, HeadChange] = {}
    for position, stream, key, version, digest in leaves:
        change = changes.get((stream, key))
        if change is None:
            changes[stream, key] = HeadChange(version, position, version, digest)
        elif version == change.count + 1:
            change.count, change.head = version, digest
        else:
            raise AuditError(
                f"{stream} {key} version {version} (store position {position}) comes after version {change.count} "
                "of its stream in the log: run `orderlog audit verify`"
            )
    return changes


class PersistedMap:
    def __init__(self, database: Database):
        self._database = database

    # ------------------------------------------------------------ sizes and roots

    def sizes(self) -> list[int]:
        """Every tree size the map was built at (one root row each), in order."""
        rows = self._database.scan(
            "SELECT tree_size FROM {map_nodes} WHERE level = ? AND idx = 0 ORDER BY tree_size", (MAP_DEPTH,)
        )
        return [int(size) for (size,) in rows]

    def size(self) -> int | None:
        """The size the map was last built at; None if it never was."""
        sizes = self.sizes()
        return sizes[-1] if sizes else None

    def root(self, size: int) -> bytes | None:
        """The map's root as built at exactly this tree size; None if it was not built there."""
        rows = self._database.scan(
            "SELECT hash FROM {map_nodes} WHERE tree_size = ? AND level = ? AND idx = 0", (size, MAP_DEPTH)
        )
        return bytes(rows[0][0]) if rows else None

    # ------------------------------------------------------------ reading the map as of a size

    def heads_in(self, buckets: Iterable[int], size: int) -> dict[int, dict[StreamName, Head]]:
        """bucket -> {stream: (count, head)} of the given buckets, as of tree size `size`."""
        latest: dict[StreamName, tuple[int, int, Head]] = {}
        for chunk in _chunks(sorted(set(buckets))):
            rows = self._database.scan(
                "SELECT bucket, stream, stream_key, tree_size, record_count, head_hash FROM {map_entries} "
                f"WHERE bucket IN ({','.join('?' * len(chunk))}) AND tree_size <= ?",
                (*chunk, size),
            )
            for bucket, stream, key, tree_size, count, head in rows:
                known = latest.get((stream, key))
                if known is None or known[0] < tree_size:
                    latest[stream, key] = (int(tree_size), int(bucket), (int(count), head))
        found: dict[int, dict[StreamName, Head]] = {}
        for name, (_size, bucket, head) in latest.items():
            found.setdefault(bucket, {})[name] = head
        return found

    def nodes(self, coordinates: Iterable[Coordinate], size: int) -> dict[Coordinate, bytes]:
        """The given nodes as of tree size `size` (an empty subtree's hash where none was stored)."""
        wanted = set(coordinates)
        by_level: dict[int, list[int]] = {}
        for level, index in wanted:
            by_level.setdefault(level, []).append(index)
        latest: dict[Coordinate, tuple[int, bytes]] = {}
        for level, indices in by_level.items():
            for chunk in _chunks(sorted(indices)):
                rows = self._database.scan(
                    "SELECT idx, tree_size, hash FROM {map_nodes} "
                    f"WHERE level = ? AND idx IN ({','.join('?' * len(chunk))}) AND tree_size <= ?",
                    (level, *chunk, size),
                )
                for index, tree_size, digest in rows:
                    known = latest.get((level, int(index)))
                    if known is None or known[0] < tree_size:
                        latest[level, int(index)] = (int(tree_size), bytes(digest))
        return {c: latest[c][1] if c in latest else EMPTY_NODES[c[0]] for c in wanted}

    def proof(self, stream: str, key: str, size: int) -> dict[str, Any]:
        """The map proof of one stream at tree size `size`: its bucket's entries and the 16
        sibling hashes up to the root (README, "For auditors")."""
        bucket = map_bucket(stream, key)
        heads = self.heads_in([bucket], size).get(bucket, {})
        siblings = self.nodes([(level, (bucket >> level) ^ 1) for level in range(MAP_DEPTH)], size)
        return {
            "bucket": bucket,
            "entries": [list(entry) for entry in bucket_entries(heads)],
            "path": [digest.hex() for digest in map_path(bucket, siblings.__getitem__)],
        }

    # ------------------------------------------------------------ advancing

    def advance(self, changes: dict[StreamName, HeadChange], size: int) -> bytes:
        """Records the new heads of the changed streams as the map at tree size `size` (in
        one transaction) and returns its root. Only the changed streams' buckets and the
        nodes above them are recomputed. Refuses a stream whose new records do not follow
        the last one the map holds for it."""
        since = self.size()
        if since is not None and since >= size:
            if since > size:
                raise AuditError(
                    f"the persisted map of stream heads is at tree size {since}, beyond the tree's {size}: "
                    "run `orderlog audit verify`"
                )
            return self.root(size) or EMPTY_NODES[MAP_DEPTH]
        buckets = {name: map_bucket(*name) for name in changes}
        heads = self.heads_in(buckets.values(), since) if since is not None else {}
        for name, change in changes.items():
            held = heads.setdefault(buckets[name], {})
            previous = held[name][0] if name in held else 0
            if change.first_version != previous + 1:
                raise AuditError(
                    f"{name[0]} {name[1]} version {change.first_version} (store position {change.first_position}) "
                    f"does not follow version {previous}, the last the map of stream heads holds for its stream: "
                    "run `orderlog audit verify`"
                )
            held[name] = (change.count, change.head)
        leaves = {bucket: bucket_leaf_hash(bucket_entries(heads[bucket])) for bucket in set(buckets.values())}
        siblings = self.nodes(sibling_coordinates(leaves) | {ROOT}, since) if since is not None else {}
        made = recompute(leaves, lambda coordinate: siblings.get(coordinate, EMPTY_NODES[coordinate[0]]))
        made.setdefault(ROOT, siblings.get(ROOT, EMPTY_NODES[MAP_DEPTH]))
        with self._database.transaction() as cursor:
            cursor.executemany(
                self._database.sql(
                    "INSERT INTO {map_entries} (tree_size, stream, stream_key, bucket, record_count, head_hash) "
                    "VALUES (?, ?, ?, ?, ?, ?)"
                ),
                [(size, *name, buckets[name], change.count, change.head) for name, change in changes.items()],
            )
            cursor.executemany(
                self._database.sql("INSERT INTO {map_nodes} (tree_size, level, idx, hash) VALUES (?, ?, ?, ?)"),
                [(size, level, index, digest) for (level, index), digest in made.items()],
            )
        return made[ROOT]

    # ------------------------------------------------------------ rows, for verification

    def entries_at(self, size: int) -> list[tuple[str, str, int, int, str]]:
        """(stream, key, bucket, count, head) of every entry row written at exactly this size."""
        return self._database.scan(  # type: ignore[return-value]
            "SELECT stream, stream_key, bucket, record_count, head_hash FROM {map_entries} WHERE tree_size = ?",
            (size,),
        )

    def nodes_at(self, size: int) -> list[tuple[int, int, bytes]]:
        """(level, index, hash) of every node row written at exactly this size."""
        return self._database.scan(  # type: ignore[return-value]
            "SELECT level, idx, hash FROM {map_nodes} WHERE tree_size = ?", (size,)
        )

    def row_sizes(self) -> set[int]:
        """Every tree size any row of the map holds."""
        rows = self._database.scan(
            "SELECT DISTINCT tree_size FROM {map_entries} UNION SELECT DISTINCT tree_size FROM {map_nodes}", ()
        )
        return {int(size) for (size,) in rows}


def _chunks(values: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(values), IN_LIST):
        yield values[start : start + IN_LIST]
