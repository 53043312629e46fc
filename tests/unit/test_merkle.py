"""RFC 9162 trees: checked against the RFC's recursive definitions, published reference
roots, and tampered proofs."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderlog.audit.merkle import (
    Frontier,
    consistency_proof,
    frontier_coordinates,
    inclusion_path,
    needed_nodes,
)
from orderlog.audit_verify import EMPTY_TREE_HASH, node_hash, verify_consistency, verify_inclusion

# Leaf inputs and roots of transparency-dev/merkle's test data (RFC 6962 hashing).
REFERENCE_INPUTS = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
REFERENCE_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def leaves_of(count: int) -> list[bytes]:
    return [hashlib.sha256(b"\x00" + n.to_bytes(4, "big")).digest() for n in range(count)]


# ---------------------------------------------------------------- the RFC's definitions, naively


def mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return EMPTY_TREE_HASH
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def naive_path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) <= 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m < k:
        return [*naive_path(m, leaves[:k]), mth(leaves[k:])]
    return [*naive_path(m - k, leaves[k:]), mth(leaves[:k])]


def naive_subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    if m == len(leaves):
        return [] if complete else [mth(leaves)]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m <= k:
        return [*naive_subproof(m, leaves[:k], complete), mth(leaves[k:])]
    return [*naive_subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def node_source(leaves: list[bytes]):  # type: ignore[no-untyped-def]
    """Every complete subtree's hash, as the persisted tree stores them."""
    frontier, nodes = Frontier.empty(), {}
    for level, index, digest in frontier.extend(leaves):
        nodes[(level, index)] = digest
    return nodes.__getitem__


# ---------------------------------------------------------------- tests


def test_roots_match_the_reference_test_vectors() -> None:
    frontier = Frontier.empty()
    roots = [frontier.root().hex()]
    for entry in REFERENCE_INPUTS:
        frontier.append(hashlib.sha256(b"\x00" + bytes.fromhex(entry)).digest())
        roots.append(frontier.root().hex())
    assert roots == REFERENCE_ROOTS


@settings(max_examples=150, deadline=None)
@given(size=st.integers(1, 300), data=st.data())
def test_proofs_equal_the_rfc_definitions_and_verify(size: int, data: st.DataObject) -> None:
    leaves = leaves_of(size)
    frontier = Frontier.empty()
    frontier.extend(leaves)
    root = frontier.root()
    assert root == mth(leaves)
    nodes = node_source(leaves)
    m = data.draw(st.integers(0, size - 1))
    path = inclusion_path(m, size, nodes)
    assert path == naive_path(m, leaves)
    assert verify_inclusion(m, size, leaves[m], path, root)
    first = data.draw(st.integers(1, size))
    proof = consistency_proof(first, size, nodes)
    assert proof == (naive_subproof(first, leaves, True) if first < size else [])
    assert verify_consistency(first, size, mth(leaves[:first]), root, proof)


@settings(max_examples=100, deadline=None)
@given(size=st.integers(2, 200), data=st.data())
def test_tampered_inclusion_proofs_fail(size: int, data: st.DataObject) -> None:
    leaves = leaves_of(size)
    root, nodes = mth(leaves), node_source(leaves)
    m = data.draw(st.integers(0, size - 1))
    path = inclusion_path(m, size, nodes)
    assert not verify_inclusion(m, size, leaves[(m + 1) % size], path, root)  # another leaf
    assert not verify_inclusion(m, size, leaves[m], path, hashlib.sha256(root).digest())  # wrong root
    if path:
        flipped = data.draw(st.integers(0, len(path) - 1))
        bad = [bytes([p[0] ^ 1]) + p[1:] if i == flipped else p for i, p in enumerate(path)]
        assert not verify_inclusion(m, size, leaves[m], bad, root)
        assert not verify_inclusion(m, size, leaves[m], path[:-1], root)  # shortened


@settings(max_examples=100, deadline=None)
@given(size=st.integers(3, 200), data=st.data())
def test_tampered_consistency_proofs_fail(size: int, data: st.DataObject) -> None:
    leaves = leaves_of(size)
    first = data.draw(st.integers(1, size - 1))
    nodes = node_source(leaves)
    proof = consistency_proof(first, size, nodes)
    old, new = mth(leaves[:first]), mth(leaves)
    assert verify_consistency(first, size, old, new, proof)
    rewritten = [*leaves[: first - 1], hashlib.sha256(b"forged").digest(), *leaves[first:]]
    assert not verify_consistency(first, size, mth(rewritten[:first]), new, proof)
    assert not verify_consistency(first, size, old, mth(rewritten), proof)
    flipped = data.draw(st.integers(0, len(proof) - 1))
    bad = [bytes([p[0] ^ 1]) + p[1:] if i == flipped else p for i, p in enumerate(proof)]
    assert not verify_consistency(first, size, old, new, bad)


def test_a_proof_reads_only_a_few_stored_nodes() -> None:
    size = 1_000_000
    wanted = needed_nodes(lambda source: inclusion_path(123_456, size, source))
    assert 0 < len(wanted) <= 2 * size.bit_length()
    assert len(needed_nodes(lambda source: consistency_proof(999_000, size, source))) <= 3 * size.bit_length()


@pytest.mark.parametrize("size", [1, 2, 3, 6, 7, 8, 1000])
def test_the_frontier_is_the_binary_decomposition_of_the_size(size: int) -> None:
    frontier = Frontier.empty()
    frontier.extend(leaves_of(size))
    assert [(level, index) for level, index, _ in frontier.nodes] == frontier_coordinates(size)
