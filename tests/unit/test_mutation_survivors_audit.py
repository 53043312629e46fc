"""What `make mutation` found untested in orderlog.audit's pure parts: one test per surviving class.

The mutants that cannot change behaviour are listed, with why, in the README's "Mutation
testing" paragraph.
"""

from __future__ import annotations

import hashlib

import pytest

from orderlog.audit import AuditError
from orderlog.audit.merkle import Frontier, consistency_proof, inclusion_path, perfect_root
from orderlog.audit.persisted_map import head_changes
from orderlog.audit.stream_map import StreamMap
from orderlog.audit_verify import map_bucket, node_hash, verify_inclusion
from tests.unit.test_map import naive_root


def leaves_of(count: int) -> list[bytes]:
    return [hashlib.sha256(b"\x00" + n.to_bytes(4, "big")).digest() for n in range(count)]


@pytest.mark.parametrize("level", [1, 2, 3, 10])
def test_a_perfect_tree_hashed_level_by_level_is_the_tree_appended_leaf_by_leaf(level: int) -> None:
    leaves = leaves_of(1 << level)
    frontier = Frontier.empty()
    frontier.extend(leaves)
    root = perfect_root(leaves)
    assert root == frontier.root()
    nodes = {(0, index): leaf for index, leaf in enumerate(leaves)}
    for height in range(1, level + 1):
        nodes |= {
            (height, index): node_hash(nodes[height - 1, 2 * index], nodes[height - 1, 2 * index + 1])
            for index in range(len(leaves) >> height)
        }
    for index in sorted({0, len(leaves) // 3, len(leaves) - 1}):  # audit_verify's own check, against that root
        path = inclusion_path(index, len(leaves), nodes.__getitem__)
        assert verify_inclusion(index, len(leaves), leaves[index], path, root)


def test_a_perfect_tree_of_one_leaf_is_that_leaf() -> None:
    (leaf,) = leaves_of(1)
    assert perfect_root([leaf]) == leaf


def test_no_consistency_proof_is_made_from_an_empty_tree_or_to_a_smaller_one() -> None:
    def node(coordinate: tuple[int, int]) -> bytes:
        raise AssertionError(f"node {coordinate} read")

    assert consistency_proof(0, 5, node) == []
    assert consistency_proof(5, 3, node) == []
    assert consistency_proof(4, 4, node) == []


def test_a_stream_whose_versions_skip_among_new_leaves_is_refused_naming_both() -> None:
    leaves = [(1, "order", "SO-1", 1, "a" * 64), (2, "order", "SO-2", 1, "b" * 64), (5, "order", "SO-1", 3, "c" * 64)]
    with pytest.raises(AuditError) as error:
        head_changes(leaves)
    assert str(error.value) == (
        "order SO-1 version 3 (store position 5) comes after version 1 of its stream in the log: "
        "run `orderlog audit verify`"
    )


def test_a_stream_beside_one_already_in_the_map_is_hashed_with_that_ones_bucket() -> None:
    first, second = ("order", "SO-211"), ("order", "SO-220")  # buckets 36648 and 36649: siblings
    assert map_bucket(*first) ^ 1 == map_bucket(*second)
    built = StreamMap()
    built.put([(*first, 1, "aa" * 32)])
    built.update()
    built.put([(*second, 2, "bb" * 32)])
    assert built.root() == naive_root({first: (1, "aa" * 32), second: (2, "bb" * 32)})
