"""RFC 9162 (Certificate Transparency 2.0) Merkle trees: roots, inclusion and consistency proofs.

The hash rules themselves (leaf = SHA-256(0x00 || entry), node = SHA-256(0x01 || l || r))
live in orderlog.audit_verify, with the proof *verification* an auditor runs offline.
This module *builds*: a tree is read through a node source that answers
`(level, index) -> hash` for complete subtrees, where node (level, index) covers leaves
[index * 2**level, (index + 1) * 2**level). Any other range's hash is computed from those,
exactly as RFC 9162 section 2.1.1 defines MTH.

Proofs are made in two passes: the first records which stored nodes the algorithm will
need, so that they can be fetched in one query; the second computes with them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from orderlog.audit_verify import EMPTY_TREE_HASH, node_hash

Coordinate = tuple[int, int]
NodeSource = Callable[[Coordinate], bytes]


def largest_power_of_two_below(n: int) -> int:
    """The k of RFC 9162: the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_hash(start: int, end: int, node: NodeSource) -> bytes:
    """MTH(D[start:end]) for a range that RFC 9162's recursions produce (start aligned)."""
    size = end - start
    if size == 0:
        return EMPTY_TREE_HASH
    if size & (size - 1) == 0 and start % size == 0:
        level = size.bit_length() - 1
        return node((level, start >> level))
    split = start + largest_power_of_two_below(size)
    return node_hash(range_hash(start, split, node), range_hash(split, end, node))


def inclusion_path(leaf: int, tree_size: int, node: NodeSource) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 section 2.1.3.1."""

    def path(start: int, end: int) -> list[bytes]:
        size = end - start
        if size <= 1:
            return []
        split = start + largest_power_of_two_below(size)
        if leaf < split:
            return [*path(start, split), range_hash(split, end, node)]
        return [*path(split, end), range_hash(start, split, node)]

    return path(0, tree_size)


def consistency_proof(first_size: int, second_size: int, node: NodeSource) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 section 2.1.4.1."""

    def subproof(start: int, end: int, complete: bool) -> list[bytes]:
        size, old = end - start, first_size - start
        if old == size:
            return [] if complete else [range_hash(start, end, node)]
        split = start + largest_power_of_two_below(size)
        if first_size <= split:
            return [*subproof(start, split, complete), range_hash(split, end, node)]
        return [*subproof(split, end, False), range_hash(start, split, node)]

    if first_size == 0 or first_size >= second_size:
        return []
    return subproof(0, second_size, True)


def perfect_root(leaves: list[bytes]) -> bytes:
    """MTH of a power-of-two number of leaves, computed level by level: the same hash as
    appending them one by one, without the bookkeeping per leaf."""
    level = leaves
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def needed_nodes(compute: Callable[[NodeSource], object]) -> set[Coordinate]:
    """The stored nodes `compute` reads, found by running it on placeholder hashes."""
    wanted: set[Coordinate] = set()

    def record(coordinate: Coordinate) -> bytes:
        wanted.add(coordinate)
        return b"\0" * 32

    compute(record)
    return wanted


def frontier_coordinates(tree_size: int) -> list[Coordinate]:
    """The complete subtrees a tree of `tree_size` leaves is made of, largest first."""
    coordinates, covered = [], 0
    for level in range(tree_size.bit_length() - 1, -1, -1):
        if tree_size >> level & 1:
            coordinates.append((level, covered >> level))
            covered += 1 << level
    return coordinates


@dataclass
class Frontier:
    """The right edge of a growing tree (its complete subtrees), enough to append leaves
    and to compute the root without reading anything else."""

    size: int
    nodes: list[tuple[int, int, bytes]]

    @classmethod
    def empty(cls) -> Frontier:
        return cls(0, [])

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Adds one leaf hash; returns every node completed by it (the leaf included)."""
        return self.append_subtree(0, leaf)

    def append_subtree(self, level: int, digest: bytes) -> list[tuple[int, int, bytes]]:
        """Adds the hash of a complete subtree of 2**level leaves, at a size that is a multiple
        of 2**level; returns every node completed by it (the subtree's included)."""
        made = [(level, self.size >> level, digest)]
        self.nodes.append(made[0])
        while len(self.nodes) >= 2 and self.nodes[-1][0] == self.nodes[-2][0]:
            right, left = self.nodes.pop(), self.nodes.pop()
            parent = (left[0] + 1, left[1] >> 1, node_hash(left[2], right[2]))
            self.nodes.append(parent)
            made.append(parent)
        self.size += 1 << level
        return made

    def copy(self) -> Frontier:
        return Frontier(self.size, list(self.nodes))

    def extend(self, leaves: Iterable[bytes]) -> list[tuple[int, int, bytes]]:
        made: list[tuple[int, int, bytes]] = []
        for leaf in leaves:
            made += self.append(leaf)
        return made

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_TREE_HASH
        result = self.nodes[-1][2]
        for _level, _index, digest in reversed(self.nodes[:-1]):
            result = node_hash(digest, result)
        return result
