"""The persisted Merkle tree over the log: its leaves (one per stored record, in store
order) and every complete subtree's hash, so that a checkpoint only adds what is new and
a proof reads a few dozen nodes instead of rebuilding the tree."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from orderlog.audit.merkle import (
    Coordinate,
    Frontier,
    NodeSource,
    consistency_proof,
    frontier_coordinates,
    inclusion_path,
    needed_nodes,
    range_hash,
)
from orderlog.audit_verify import leaf_hash
from orderlog.store.database import Database

Leaf = tuple[int, str, str, int, str]
"""(store position, stream, stream key, version, record hash) of one leaf."""


class PersistedTree:
    def __init__(self, database: Database):
        self._database = database

    def size(self) -> int:
        with self._database.transaction(commit=False) as cursor:
            row = cursor.execute(self._database.sql("SELECT MAX(leaf_index) FROM {merkle_leaves}")).fetchone()
        return 0 if row is None or row[0] is None else int(row[0]) + 1

    def last_position(self) -> int:
        with self._database.transaction(commit=False) as cursor:
            row = cursor.execute(
                self._database.sql("SELECT notification_id FROM {merkle_leaves} ORDER BY leaf_index DESC LIMIT 1")
            ).fetchone()
        return 0 if row is None else int(row[0])

    def append(self, leaves: list[Leaf]) -> int:
        """Adds leaves after the current ones, with every subtree they complete, in one
        transaction; returns the new size."""
        size = self.size()
        coordinates = frontier_coordinates(size)
        stored = self.nodes(coordinates)
        frontier = Frontier(size, [(level, index, stored[(level, index)]) for level, index in coordinates])
        made = frontier.extend(leaf_hash(leaf[4]) for leaf in leaves)
        rows = [(size + offset, *leaf) for offset, leaf in enumerate(leaves)]
        with self._database.transaction() as cursor:
            cursor.executemany(
                self._database.sql(
                    "INSERT INTO {merkle_leaves} (leaf_index, notification_id, stream, stream_key, version, "
                    "record_hash) VALUES (?, ?, ?, ?, ?, ?)"
                ),
                rows,
            )
            cursor.executemany(
                self._database.sql("INSERT INTO {merkle_nodes} (level, idx, hash) VALUES (?, ?, ?)"), made
            )
        return frontier.size

    # ------------------------------------------------------------ reading nodes

    def nodes(self, coordinates: Iterable[Coordinate]) -> dict[Coordinate, bytes]:
        """Stored nodes by coordinate, in one indexed query (grouped by level: SQLite does
        not use the primary key for a row-value IN list)."""
        by_level: dict[int, list[int]] = {}
        for level, index in set(coordinates):
            by_level.setdefault(level, []).append(index)
        if not by_level:
            return {}
        clauses = " OR ".join(f"(level = ? AND idx IN ({','.join('?' * len(v))}))" for v in by_level.values())
        params = [value for level, indices in by_level.items() for value in (level, *indices)]
        rows = self._database.scan(f"SELECT level, idx, hash FROM {{merkle_nodes}} WHERE {clauses}", params)
        found = {(int(level), int(index)): bytes(digest) for level, index, digest in rows}
        missing = [
            (level, index) for level, indices in by_level.items() for index in indices if (level, index) not in found
        ]
        if missing:
            raise LookupError(f"the persisted tree lacks node {missing[0]}: run `orderlog audit verify`")
        return found

    def compute(self, algorithm: Callable[[NodeSource], Any]) -> Any:
        """Runs a tree algorithm on stored nodes, fetched in one pass."""
        nodes = self.nodes(needed_nodes(algorithm))
        return algorithm(nodes.__getitem__)

    def root(self, size: int) -> bytes:
        return self.compute(lambda node: range_hash(0, size, node))  # type: ignore[no-any-return]

    def inclusion(self, leaf_index: int, tree_size: int) -> list[bytes]:
        return self.compute(lambda node: inclusion_path(leaf_index, tree_size, node))  # type: ignore[no-any-return]

    def consistency(self, first_size: int, second_size: int) -> list[bytes]:
        return self.compute(lambda node: consistency_proof(first_size, second_size, node))  # type: ignore[no-any-return]

    # ------------------------------------------------------------ reading leaves

    def level_nodes(self, level: int) -> dict[int, bytes]:
        """Every stored node of one level, by index."""
        rows = self._database.scan("SELECT idx, hash FROM {merkle_nodes} WHERE level = ?", (level,))
        return {int(index): bytes(digest) for index, digest in rows}

    def leaves(self, start: int, limit: int) -> list[tuple[int, Leaf]]:
        rows = self._database.scan(
            "SELECT leaf_index, notification_id, stream, stream_key, version, record_hash "
            "FROM {merkle_leaves} WHERE leaf_index >= ? ORDER BY leaf_index LIMIT ?",
            (start, limit),
        )
        return [(row[0], row[1:]) for row in rows]

    def positions(self, start: int, count: int) -> list[int]:
        """The store positions of `count` leaves from index `start`: a chunk's hash covers its
        records' hashes, not where they sit in the log."""
        rows = self._database.scan(
            "SELECT notification_id FROM {merkle_leaves} WHERE leaf_index >= ? ORDER BY leaf_index LIMIT ?",
            (start, count),
        )
        return [int(row[0]) for row in rows]

    def leaves_between(self, start: int, end: int, page: int = 50_000) -> Iterator[Leaf]:
        """The leaves from index `start` up to (not including) `end`, read a page at a time."""
        while start < end and (rows := self.leaves(start, min(page, end - start))):
            yield from (leaf for _index, leaf in rows)
            start = rows[-1][0] + 1

    def leaf_indices(self, positions: list[int]) -> dict[int, int]:
        """Store position -> leaf index, for positions the tree holds."""
        if not positions:
            return {}
        marks = ",".join("?" * len(positions))
        with self._database.transaction(commit=False) as cursor:
            rows = cursor.execute(
                self._database.sql(
                    f"SELECT notification_id, leaf_index FROM {{merkle_leaves}} WHERE notification_id IN ({marks})"
                ),
                positions,
            ).fetchall()
        return {int(position): int(index) for position, index in rows}
