"""The map of stream heads, checked inside `audit verify`'s single pass over the log.

As verification follows every chain, the map is rebuilt from the log (each stream's count
and last hash) and its root computed at each size where one is wanted: the size of each
checkpoint that signs a map_root, and each size the persisted map was built at. Only the
buckets of streams touched since the last such size are recomputed.

At each size the persisted map was built at, the rows written there must be exactly the
entries of the streams the log changed since the size before, and the nodes above them, as
rebuilt: by induction from the empty map, the persisted map then equals the rebuilt one at
every size, which is what proofs read. Rows at a size where no map was built, or beyond the
end of the log, are named too.
"""

from __future__ import annotations

from collections.abc import Iterable

from orderlog.audit.persisted_map import PersistedMap
from orderlog.audit.stream_map import EMPTY_NODES, ROOT, Coordinate, MapRow, StreamMap, StreamName, path_coordinates

Found = tuple[str, str]
"""(where, what) of one divergence of the persisted map; it has no store position."""


class MapVerification:
    def __init__(self, persisted: PersistedMap, checkpoint_sizes: Iterable[int]):
        self.rebuilt = StreamMap()
        self.roots: dict[int, bytes] = {}
        """The rebuilt map's root at each wanted size the log reached."""
        self.divergences: list[Found] = []
        self._persisted = persisted
        self._built_at = persisted.sizes()
        self.sizes = set(self._built_at) | set(checkpoint_sizes)
        self._changed_names: set[StreamName] = set()
        self._changed_nodes: set[Coordinate] = {ROOT}

    def at_size(self, size: int, heads: list[tuple[str, str, int, str]]) -> None:
        """The log has reached `size`; `heads` are (stream, key, count, head) of every stream
        touched since the last wanted size."""
        self.rebuilt.put(heads)
        self._changed_names.update([(head[0], head[1]) for head in heads])
        self._changed_nodes |= self.rebuilt.update().keys()
        self.roots[size] = self.rebuilt.node(ROOT)
        if size in self._built_at:
            self._compare(size)

    def finish(self, log_size: int, signed: dict[int, str]) -> None:
        """After the pass: persisted rows the pass could not reach or that belong to no map,
        and maps a checkpoint signed (size -> map_root), that the log still gives, but that the
        store no longer holds (proofs against that checkpoint could not be made)."""
        for size, map_root in sorted(signed.items()):
            if size not in self._built_at and size in self.roots and self.roots[size].hex() == map_root:
                self.divergences.append(
                    (
                        _where(size),
                        "missing, though a checkpoint signs its root: its rows were removed, and proofs against "
                        "that checkpoint cannot be made",
                    )
                )
        beyond = [size for size in self._built_at if size > log_size]
        if beyond:
            self.divergences.append(
                (
                    _where(beyond[0]),
                    f"it was built over {beyond[0]} records but the log holds only {log_size}: records were removed",
                )
            )
        for size in sorted(self._persisted.row_sizes() - set(self._built_at)):
            self.divergences.append(
                (_where(size), "it holds rows at a size where no map was built (no root there): they were added since")
            )

    def _compare(self, size: int) -> None:
        """The rows persisted at `size` must be exactly the entries of the streams changed since
        the size before, and the nodes above them (and the root), as rebuilt from the log."""
        rows, nodes = self.rebuilt.rows, self.rebuilt.nodes
        expected = {rows[name] for name in self._changed_names}
        stated = set(self._persisted.entries_at(size))
        if stated != expected:
            self._name_entries(size, stated, expected)
        expected_nodes = {
            (level, index, nodes.get((level, index)) or EMPTY_NODES[level]) for level, index in self._changed_nodes
        }
        stated_nodes = set(self._persisted.nodes_at(size))
        if stated_nodes != expected_nodes:
            diverged = {row[2] for row in stated ^ expected if isinstance(row[2], int)}
            explained = path_coordinates(diverged)  # nodes above a diverged entry differ as a consequence
            for level, index in sorted({row[:2] for row in stated_nodes ^ expected_nodes} - explained, key=str):
                self.divergences.append(
                    (
                        _where(size),
                        f"its node at level {level}, index {index} is not the one rebuilt from the log: "
                        "the map was altered since it was built",
                    )
                )
        self._changed_names.clear()
        self._changed_nodes = {ROOT}

    def _name_entries(self, size: int, stated: set[MapRow], expected: set[MapRow]) -> None:
        rows_of: dict[StreamName, list[MapRow]] = {}
        for row in sorted(stated ^ expected, key=str):  # rows altered in place may hold any type
            rows_of.setdefault((row[0], row[1]), []).append(row)
        for (stream, key), rows in rows_of.items():
            said = [row for row in rows if row in stated]
            rebuilt = self.rebuilt.head((stream, key))
            log_says = "the log has no such stream" if rebuilt is None else f"the log gives {_head(rebuilt)}"
            if not said:
                what = f"it holds no entry for {stream} {key}, which changed since the size before; {log_says}"
            elif said[0][2] != self.rebuilt.bucket_of((stream, key)):
                what = (
                    f"its entry for {stream} {key} is in bucket {said[0][2]}, not in the stream's bucket "
                    f"{self.rebuilt.bucket_of((stream, key))}"
                )
            else:
                altered = "the map or the log was altered since it was built"
                what = f"its entry for {stream} {key} says {_head(said[0][3:])}; {log_says}: {altered}"
            self.divergences.append((_where(size), what))


def _where(size: int) -> str:
    return f"the map of stream heads persisted at tree size {size}"


def _head(head: tuple[int, str]) -> str:
    return f"{head[0]} records, head {head[1]}"
