"""The map of stream heads: built incrementally or at once, it is the same tree; its proofs
verify with the offline rules and fail when anything in them changes."""

from __future__ import annotations

import hashlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from orderlog.audit.stream_map import (
    EMPTY_NODES,
    ROOT,
    StreamMap,
    bucket_entries,
    map_path,
    path_coordinates,
    recompute,
    sibling_coordinates,
)
from orderlog.audit_verify import (
    EMPTY_BUCKET_HASH,
    MAP_BUCKETS,
    MAP_DEPTH,
    bucket_leaf_hash,
    map_bucket,
    map_root_from_path,
    node_hash,
)

names = st.tuples(st.sampled_from(["order", "sku", "customer", "source"]), st.text(min_size=1, max_size=12))
heads = st.dictionaries(names, st.tuples(st.integers(1, 50), st.binary(min_size=32, max_size=32).map(bytes.hex)))


def naive_root(all_heads: dict[tuple[str, str], tuple[int, str]]) -> bytes:
    """The map root by its definition: every one of the 65,536 leaves, then 16 levels."""
    buckets: dict[int, dict[tuple[str, str], tuple[int, str]]] = {}
    for (stream, key), head in all_heads.items():
        buckets.setdefault(map_bucket(stream, key), {})[stream, key] = head
    level = [bucket_leaf_hash(bucket_entries(buckets.get(b, {}))) for b in range(MAP_BUCKETS)]
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def test_the_hash_rules_are_the_documented_ones() -> None:
    digest = hashlib.sha256(b"order/SO-1").digest()
    assert map_bucket("order", "SO-1") == digest[0] * 256 + digest[1]
    entries = [("order", "SO-1", 3, "ab" * 32)]
    expected = b"\x00" + json.dumps([list(e) for e in entries], separators=(",", ":")).encode()
    assert bucket_leaf_hash(entries) == hashlib.sha256(expected).digest()
    assert hashlib.sha256(b"\x00[]").digest() == EMPTY_BUCKET_HASH
    assert StreamMap().root() == EMPTY_NODES[MAP_DEPTH] == naive_root({})


@settings(max_examples=5, deadline=None)
@given(heads=heads)
def test_the_map_built_at_once_is_the_map_by_definition(heads: dict[tuple[str, str], tuple[int, str]]) -> None:
    built = StreamMap()
    for (stream, key), (count, head) in heads.items():
        built.put([(stream, key, count, head)])
    assert built.root() == naive_root(heads)


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(heads, min_size=1, max_size=5))
def test_incremental_updates_equal_a_build_from_scratch(steps: list[dict[tuple[str, str], tuple[int, str]]]) -> None:
    incremental, everything = StreamMap(), {}
    persisted: dict[tuple[int, int], bytes] = {}  # as the persisted map stores nodes: only changed ones
    for step in steps:
        for (stream, key), (count, head) in step.items():
            incremental.put([(stream, key, count, head)])
        everything.update(step)
        made = incremental.update()
        # what a checkpoint does: recompute only the changed buckets, reading siblings from storage
        by_bucket: dict[int, dict[tuple[str, str], tuple[int, str]]] = {}
        for name, head in everything.items():
            by_bucket.setdefault(map_bucket(*name), {})[name] = head
        changed = {map_bucket(*name) for name in step}
        leaves = {b: bucket_leaf_hash(bucket_entries(by_bucket[b])) for b in changed}
        assert sibling_coordinates(changed).isdisjoint(path_coordinates(changed))
        stored = recompute(leaves, lambda c: persisted.get(c, EMPTY_NODES[c[0]]))
        persisted.update(stored)
        assert stored == made
        scratch = StreamMap()
        for (stream, key), (count, head) in everything.items():
            scratch.put([(stream, key, count, head)])
        assert incremental.root() == scratch.root() == persisted.get(ROOT, EMPTY_NODES[MAP_DEPTH])


@settings(max_examples=50, deadline=None)
@given(heads=heads.filter(bool), data=st.data())
def test_a_map_path_leads_to_the_root_and_nothing_else_does(
    heads: dict[tuple[str, str], tuple[int, str]], data: st.DataObject
) -> None:
    built = StreamMap()
    for (stream, key), (count, head) in heads.items():
        built.put([(stream, key, count, head)])
    root = built.root()
    stream, key = data.draw(st.sampled_from(sorted(heads)))
    bucket = map_bucket(stream, key)
    entries, path = built.entries(bucket), map_path(bucket, built.node)
    assert (stream, key, *heads[stream, key]) in entries
    assert built.head((stream, key)) == heads[stream, key]
    assert map_root_from_path(bucket, bucket_leaf_hash(entries), path) == root
    forged = [(s, k, c + 1 if (s, k) == (stream, key) else c, h) for s, k, c, h in entries]
    assert map_root_from_path(bucket, bucket_leaf_hash(forged), path) != root
    without = [entry for entry in entries if (entry[0], entry[1]) != (stream, key)]
    assert map_root_from_path(bucket, bucket_leaf_hash(without), path) != root  # absence cannot be faked
    flipped = data.draw(st.integers(0, MAP_DEPTH - 1))
    bent = [bytes([p[0] ^ 1]) + p[1:] if i == flipped else p for i, p in enumerate(path)]
    assert map_root_from_path(bucket, bucket_leaf_hash(entries), bent) != root
