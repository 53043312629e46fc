"""What `make mutation` found untested in orderlog.audit: one test per surviving class, in-process
(the command-line tests run `orderlog` in subprocesses, out of mutmut's reach), on SQLite stores
altered with SQLite's own syntax (`rowid`, `x'00'`).

The mutants that cannot change behaviour are listed, with why, in the README's "Mutation
testing" paragraph.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orderlog.audit import AuditError, verification
from orderlog.audit.checkpoints import (
    extend_tree,
    load_checkpoint,
    stored_checkpoints,
    write_checkpoint,
)
from orderlog.audit.merkle import consistency_proof, needed_nodes
from orderlog.audit.persisted_map import HeadChange, PersistedMap
from orderlog.audit.proofs import order_proof
from orderlog.audit.tree import PersistedTree
from orderlog.audit.verification import Verification, verify_store
from orderlog.audit_verify import (
    MAP_BUCKETS,
    MAP_DEPTH,
    check_proof,
    checkpoint_payload,
    map_bucket,
    verify_proof,
)
from orderlog.config import Config
from orderlog.sources.signing import sign
from tests import builders as b
from tests.conftest import reopen
from tests.integration.test_audit import KEY, PUBLIC, Publish, checkpoint_of, history, map_rows, verify
from tests.integration.test_audit_proofs import proof_of
from tests.tampering import RawStore, Row, reseal, rewrite_with_valid_hashes


@pytest.fixture
def store_url(sqlite_url: str) -> str:
    """SQLite only: mutmut leaves PostgreSQL out, and the alterations here are written for SQLite."""
    return sqlite_url


def rows_of(raw: RawStore) -> dict[tuple[str, int], Row]:
    """Every stored row by (order id, version), as the record says."""
    return {(json.loads(row[4])["key"], row[2]): row for row in raw.rows()}


def execute(raw: RawStore, sql: str, params: tuple[Any, ...] = ()) -> None:
    with raw.cursor() as cursor:
        cursor.execute(raw.sql(sql), params)


def where(row: Row, key: str | None = None, version: int | None = None, position: int | None = None) -> str:
    """The label of the record in `row`: `order SO-1 version 2 (store position 3)`."""
    record = json.loads(row[4])
    version = row[2] if version is None else version
    return f"order {key or record['key']} version {version} (store position {row[0] if position is None else position})"


def verify_with(config: Config, checkpoints: list[tuple[str, Any]], public_key: str | None = PUBLIC) -> Verification:
    app = reopen(config)
    try:
        return verify_store(app, checkpoints, public_key)
    finally:
        app.close()


def blank_map_node(raw: RawStore, level: int, index: int) -> None:
    map_rows(raw, f"UPDATE {{p}}orderlog_map_nodes SET hash = x'00' WHERE level = {level} AND idx = {index}")


def seven_records_of_so1(publish: Publish) -> None:
    publish(
        b.submitted("SO-1"),
        b.paid("SO-1", amount=400),
        b.paid("SO-1", amount=600, payment_id="P-2"),
        b.dispatched("SO-1"),
        b.refunded("SO-1", amount=100, refund_id="R-1"),
        b.refunded("SO-1", amount=50, refund_id="R-2"),
        b.refunded("SO-1", amount=20, refund_id="R-3"),
    )


# ---------------------------------------------------------------- the chains (orderlog.audit.chains)


def test_a_record_after_an_unreadable_one_is_judged_by_the_key_its_stream_had(config: Config, publish: Publish) -> None:
    history(publish)
    raw = RawStore(config.location)
    rows = rows_of(raw)
    raw.set_state(rows["SO-1", 1][0], b"not json")  # its stream's first record: no key known before it
    raw.set_state(rows["SO-2", 2][0], b"not json")  # the key SO-2 is known from version 1
    raw.set_state(rows["SO-2", 3][0], reseal({**json.loads(rows["SO-2", 3][4]), "key": "SO-9"}))
    raw.set_state(rows["SO-3", 2][0], b"not json")  # the last record of SO-3: its head names no key
    raw.set_state(rows["SO-1", 5][0], b'{"hash":null}')
    result = verify(config)
    unreadable = "the stored record is not readable JSON"
    assert [str(d) for d in result.divergences] == [
        f"order id {rows['SO-1', 1][1]} version 1 (store position {rows['SO-1', 1][0]}): {unreadable}",
        f"order id {rows['SO-2', 2][1]} version 2 (store position {rows['SO-2', 2][0]}): {unreadable}",
        f"{where(rows['SO-2', 3], 'SO-9')}: the record names order SO-9, but its stream holds order SO-2",
        f"order id {rows['SO-3', 2][1]} version 2 (store position {rows['SO-3', 2][0]}): {unreadable}",
        f"order id {rows['SO-1', 5][1]} version 5 (store position {rows['SO-1', 5][0]}): the stored record has no hash",
    ]
    assert (result.divergence_count, result.orders, result.streams) == (5, 3, 3)
    assert result.headline() == f"FAILED: {result.divergences[0]}"


def test_each_fault_of_a_record_is_named_once_in_its_own_words(config: Config, publish: Publish) -> None:
    history(publish)
    raw = RawStore(config.location)
    rows = rows_of(raw)
    so1_v2, so2_v1, so2_v3, so3_v2 = rows["SO-1", 2], rows["SO-2", 1], rows["SO-2", 3], rows["SO-3", 2]
    raw.set_state(so1_v2[0], so1_v2[4].replace(b'"amount":1000', b'"amount":9000'))
    record = json.loads(so2_v1[4])
    hash_first = json.dumps({"hash": record["hash"], **record}, separators=(",", ":")).encode()
    raw.set_state(so2_v1[0], hash_first)
    execute(raw, "UPDATE stored_events SET topic = 'sku/StockCounted' WHERE rowid = ?", (so2_v3[0],))
    execute(raw, "UPDATE stored_events SET originator_version = 7 WHERE rowid = ?", (so3_v2[0],))
    last = raw.rows()[-1]  # SO-1's last record, stored as version 0: older than its stream's latest
    execute(raw, "UPDATE stored_events SET originator_version = 0 WHERE rowid = ?", (last[0],))
    result = verify(config)
    assert [str(d) for d in result.divergences] == [
        f"{where(so2_v1)}: the stored record's hash is not its last member, where orderlog writes it",
        f"{where(so1_v2)}: its hash does not match its content: the record was altered after it was written",
        f"{where(so2_v3)}: the record says order version 3 but is stored as sku version 3: it was moved",
        f"{where(so3_v2, version=7)}: the record says order version 2 but is stored as order version 7: it was moved",
        f"{where(so3_v2, version=7)}: versions 2-6 of this stream is missing: removed from the log",
        f"{where(last, version=0)}: the record says order version {last[2]} but is stored as order version 0: it "
        "was moved",
        f"{where(last, version=0)}: it comes after version {last[2] - 1} of its stream: repeated or reordered",
    ]
    assert result.divergence_count == 7
    assert result.orders == 3  # SO-2's head, reached the careful way, still names its stream


def test_a_topic_is_read_up_to_its_first_slash(config: Config, publish: Publish) -> None:
    history(publish)
    raw = RawStore(config.location)
    rows = rows_of(raw)
    so1_v2, so3_v2 = rows["SO-1", 2], rows["SO-3", 2]
    raw.set_state(so1_v2[0], so1_v2[4].replace(b'"amount":1000', b'"amount":9000'))
    raw.set_state(so3_v2[0], b"not json")
    for row in (so1_v2, so3_v2):
        execute(raw, "UPDATE stored_events SET topic = topic || '/more' WHERE rowid = ?", (row[0],))
    result = verify(config)
    assert [d.what for d in result.divergences] == [
        "its hash does not match its content: the record was altered after it was written",
        "the stored record is not readable JSON",
    ]
    assert result.orders == 3


def test_a_forged_record_that_links_up_is_still_judged_in_full(config: Config, publish: Publish) -> None:
    """The fast path takes a record only if it is exactly what the careful path would take."""
    history(publish)
    publish(b.submitted("SO-4"), b.paid("SO-4"))
    raw = RawStore(config.location)
    rows = rows_of(raw)
    rewrite_with_valid_hashes(raw, rows["SO-3", 1], lambda record: record.update(key="SO-7"))
    so2_v3, so1_v2, so1_v5, so4_v2 = rows["SO-2", 3], rows["SO-1", 2], rows["SO-1", 5], rows["SO-4", 2]
    raw.set_state(so2_v3[0], reseal({**json.loads(so2_v3[4]), "version": 4}))  # linked, but one version on
    execute(raw, "UPDATE stored_events SET originator_version = 4 WHERE rowid = ?", (so2_v3[0],))
    raw.set_state(so1_v5[0], reseal({**json.loads(so1_v5[4]), "key": "SO-8"}))  # linked, but another key
    execute(raw, "UPDATE stored_events SET topic = 'orders/OrderPaid' WHERE rowid = ?", (so1_v2[0],))
    raw.delete(rows["SO-4", 1][0])  # version 2 made to look like a first record
    raw.set_state(so4_v2[0], reseal({**json.loads(so4_v2[4]), "prev_hash": "0" * 64}))
    rows_now = rows_of(raw)
    assert [str(d) for d in verify(config).divergences] == [
        f"{where(so1_v2)}: the record says order version 2 but is stored as orders version 2: it was moved",
        f"{where(rows_now['SO-7', 1])}: the record names order SO-7, which is not the stream it is stored in",
        f"{where(so2_v3, version=4)}: version 3 of this stream is missing: removed from the log",
        f"{where(rows_now['SO-3', 2])}: the record names order SO-3, but its stream holds order SO-7",
        f"{where(so1_v5, 'SO-8')}: the record names order SO-8, but its stream holds order SO-1",
        f"{where(so4_v2)}: version 1 of this stream is missing: removed from the log",
    ]


def test_a_decoy_tail_inside_data_is_not_read_as_the_records_own_members(config: Config, publish: Publish) -> None:
    history(publish)
    raw = RawStore(config.location)
    rows = rows_of(raw)

    def decoy(stream_key: str, **change: str) -> Callable[[dict[str, Any]], None]:
        """Inside data, a tail that looks like the members after it, as they should be for `stream_key`."""
        tail = {"a": 0, "key": stream_key, "occurred_at": "x", "prev_hash": "0" * 64, "stream": "order", "type": "x"}
        return lambda record: (record["data"].update(zz=tail), record.update(change))

    rewrite_with_valid_hashes(raw, rows["SO-1", 1], decoy("SO-1", prev_hash="ab" * 32))
    rewrite_with_valid_hashes(raw, rows["SO-2", 1], decoy("SO-2", key="SO-X"))
    assert b',"stream":"order","type":"x"}' in rows_of(raw)["SO-1", 1][4]
    assert [str(d) for d in verify(config).divergences] == [
        f"{where(rows['SO-1', 1])}: its prev_hash is not the genesis hash",
        f"{where(rows['SO-2', 1], 'SO-X')}: the record names order SO-X, which is not the stream it is stored in",
        f"{where(rows['SO-2', 2])}: the record names order SO-2, but its stream holds order SO-X",
    ]


def test_a_single_record_the_tree_holds_is_compared_with_it(config: Config, publish: Publish) -> None:
    publish(b.submitted("SO-1"))
    checkpoint_of(config)
    raw = RawStore(config.location)
    (row,) = raw.rows()
    rewrite_with_valid_hashes(raw, row, lambda record: record["data"].update(channel="forged"))
    assert str(verify(config).divergences[0]) == (
        f"{where(row)}: its hash differs from the one the Merkle tree recorded at checkpoint time: altered since"
    )


def test_a_late_version_splits_its_gap_and_only_versions_never_seen_are_named_removed(
    config: Config, publish: Publish
) -> None:
    seven_records_of_so1(publish)
    raw = RawStore(config.location)
    rows = rows_of(raw)
    v1, v3, v4, v6, v7 = (rows["SO-1", n] for n in (1, 3, 4, 6, 7))
    for version in (2, 5):
        raw.delete(rows["SO-1", version][0])
    execute(raw, "UPDATE stored_events SET rowid = ? WHERE rowid = ?", (rows["SO-1", 2][0], v6[0]))
    execute(raw, "UPDATE stored_events SET originator_version = 0 WHERE rowid = ?", (v7[0],))
    at2 = rows["SO-1", 2][0]  # where version 6 now is: store order 1, 6, 3, 4, then 7 stored as version 0
    came = f"order SO-1 version 6 (store position {at2})"
    reordered = "the records were reordered"
    assert [str(d) for d in verify(config).divergences] == [
        f"{came}: it comes before version 3 of its stream, which is at store position {v3[0]}: {reordered}",
        f"{came}: it comes before version 4 of its stream, which is at store position {v4[0]}: {reordered}",
        f"{came}: version 2 of this stream is missing: removed from the log",
        f"{came}: version 5 of this stream is missing: removed from the log",
        f"{where(v3)}: it comes after version 6 of its stream (store position {at2}): {reordered}",
        f"{where(v4)}: it comes after version 6 of its stream (store position {at2}): {reordered}",
        f"{where(v7, version=0)}: the record says order version 7 but is stored as order version 0: it was moved",
        f"{where(v7, version=0)}: it comes after version 6 of its stream: repeated or reordered",
    ]
    assert v1[0] < at2 < v3[0]


# ---------------------------------------------------------------- the log against the persisted tree


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    """The log compared with the persisted tree 4 leaves at a time instead of 1,024: the same code,
    with complete chunks in a log of 10 records."""
    monkeypatch.setattr(verification, "CHUNK_LEVEL", 2)
    monkeypatch.setattr(verification, "CHUNK", 4)
    return 4


def test_a_chunk_whose_tree_node_differs_or_is_missing_is_compared_leaf_by_leaf(
    config: Config, publish: Publish, small_chunks: int
) -> None:
    history(publish)
    checkpoint = checkpoint_of(config)
    clean = verify(config, checkpoint)
    assert clean.ok and clean.root == checkpoint["root_hash"]
    assert clean.checkpoints[0].consistency_hashes == 0  # a checkpoint at the persisted tree's own size
    raw = RawStore(config.location)
    target = raw.rows()[7]  # in the second complete chunk; the last record of its order
    rewrite_with_valid_hashes(raw, target, lambda record: record["data"].update(reason="forged"))
    altered = "its hash differs from the one the Merkle tree recorded at checkpoint time: altered since"
    assert str(verify(config).divergences[0]) == f"{where(target)}: {altered}"
    map_rows(raw, "DELETE FROM {p}orderlog_merkle_nodes WHERE level = 2 AND idx = 1")
    assert str(verify(config).divergences[0]) == f"{where(target)}: {altered}"


def test_records_renumbered_in_the_log_are_named_in_complete_chunks_too(
    config: Config, publish: Publish, small_chunks: int
) -> None:
    """A chunk's hash covers its records' hashes, not their store positions: every record whose
    position changed since the checkpoint is named, not only those of the last, incomplete
    chunk (a proof looks a record up by its position, and would fail)."""
    history(publish)
    checkpoint_of(config)
    raw = RawStore(config.location)
    before = raw.rows()
    execute(raw, f"UPDATE {raw.events} SET {raw.position} = {raw.position} + 100")
    result = verify(config)
    named = [d for d in result.divergences if "positions were changed" in d.what]
    assert [d.position for d in named] == [row[0] + 100 for row in before]
    assert str(named[0]) == (
        f"{where(before[0], position=before[0][0] + 100)}: the Merkle tree recorded it, in this place in the log, "
        f"at store position {before[0][0]}: the log's positions were changed since the checkpoint (proofs look "
        "records up by position)"
    )


def test_records_removed_from_the_end_are_named_by_the_tree_and_the_map(config: Config, publish: Publish) -> None:
    history(publish)
    checkpoint = checkpoint_of(config)
    raw = RawStore(config.location)
    rows = raw.rows()
    for row in rows[-2:]:
        raw.delete(row[0])
    result = verify(config)
    size = checkpoint["tree_size"]
    assert [str(d) for d in result.divergences] == [
        f"{where(rows[-2])}: the tree built at the last checkpoint holds {size} records but the log holds only "
        f"{size - 2}: this record (leaf {size - 2}) and any after it were removed",
        f"the map of stream heads persisted at tree size {size}: it was built over {size} records but the log holds "
        f"only {size - 2}: records were removed",
    ]


def test_each_way_a_record_differs_from_the_tree_is_named(config: Config, publish: Publish) -> None:
    history(publish)
    checkpoint_of(config)
    raw = RawStore(config.location)
    rows = raw.rows()
    # the same record altered in place, every hash recomputed
    rewrite_with_valid_hashes(raw, rows[7], lambda record: record["data"].update(reason="forged"))
    # another record put in place of one, at its store position
    raw.set_state(rows[4][0], reseal({**json.loads(rows[4][4]), "key": "SO-X"}))
    # three records rotated: 0, 1, 2 now hold what 1, 2 and 0 held
    raw.swap(rows[0], rows[1])
    raw.swap(raw.rows()[1], raw.rows()[2])
    texts = [str(d) for d in verify(config).divergences]
    recorded = [where(row) for row in rows]
    moved = [
        f"{where(rows[now], position=rows[place][0])}: the Merkle tree recorded it at store position {rows[now][0]}, "
        f"and {recorded[place]} here: records were moved since the checkpoint"
        for place, now in ((0, 1), (1, 2), (2, 0))
    ]
    assert [text for text in texts if "records were moved since the checkpoint" in text] == moved
    assert (
        f"{where(rows[4], 'SO-X')}: the Merkle tree recorded {recorded[4]} at this store position; it now holds "
        "another record: records were replaced, moved, removed or inserted since"
    ) in texts
    assert (
        f"{recorded[7]}: its hash differs from the one the Merkle tree recorded at checkpoint time: altered since"
    ) in texts


def test_a_record_removed_from_the_middle_shifts_the_last_one_out_of_the_compared_leaves(
    config: Config, publish: Publish
) -> None:
    history(publish)
    checkpoint_of(config)
    raw = RawStore(config.location)
    rows = raw.rows()
    raw.delete(rows[3][0])
    texts = [str(d) for d in verify(config).divergences]
    assert (
        f"{where(rows[-1])}: the Merkle tree recorded {where(rows[-2])} at this place in the log: records were "
        "removed, inserted or moved since"
    ) in texts


def test_only_the_earliest_divergences_are_kept_and_every_one_is_counted(config: Config, publish: Publish) -> None:
    publish(*(b.submitted(f"SO-{n}") for n in range(520)))
    checkpoint_of(config)
    raw = RawStore(config.location)
    assert len(raw.rows()) == 520
    execute(raw, "UPDATE stored_events SET rowid = rowid + 100000")  # every record at another store position
    result = verify(config)
    assert result.divergence_count == 520
    assert [d.position for d in result.divergences] == list(range(100001, 100051))


# ---------------------------------------------------------------- checkpoints, as verification reports them


def test_a_checkpoint_check_says_what_was_verified(config: Config, publish: Publish) -> None:
    empty = checkpoint_of(config)  # before any record
    publish(b.submitted("SO-0"))
    first = checkpoint_of(config)
    history(publish)
    latest = checkpoint_of(config)
    legacy = {k: first[k] for k in ("tree_size", "root_hash", "issued_at", "key_id")}
    legacy["signature"] = sign(KEY, checkpoint_payload(legacy))
    result = verify_with(config, [("empty", empty), ("first", first), ("legacy", legacy), ("latest", latest)])
    app = reopen(config)
    hashes = len(PersistedTree(app.database).consistency(1, latest["tree_size"]))
    app.close()
    heads = "map of stream heads verified"
    no_map = (
        "it has no map_root (issued before the map of stream heads): proofs against it show inclusion, not completeness"
    )
    assert [str(check) for check in result.checkpoints] == [
        f"checkpoint empty (tree_size 0): signature valid; the log extends it, {heads}",
        f"checkpoint first (tree_size 1): signature valid; the log extends it, consistency proof of {hashes} hashes "
        f"verified, {heads}",
        f"checkpoint legacy (tree_size 1): signature valid; the log extends it, consistency proof of {hashes} hashes "
        f"verified; {no_map}",
        f"checkpoint latest (tree_size 11): signature valid; the log extends it, consistency proof of 0 hashes "
        f"verified, {heads}",
    ]
    assert hashes > 0
    assert [check.consistency_hashes for check in result.checkpoints] == [None, hashes, hashes, 0]
    shown = result.as_dict()
    assert (shown["ok"], shown["headline"]) == (True, result.headline())
    assert shown["checkpoints"][1] == {
        "origin": "first",
        "tree_size": 1,
        "root_hash": first["root_hash"],
        "signature": "valid",
        "invalid": "",
        "problems": [],
        "consistency_hashes": hashes,
        "map_root_checked": True,
    }
    assert (shown["events"], shown["orders"], shown["root"], shown["divergence_count"]) == (
        11,
        4,
        latest["root_hash"],
        0,
    )


def test_a_failed_or_invalid_checkpoint_check_says_why(config: Config, publish: Publish) -> None:
    history(publish)
    checkpoint = checkpoint_of(config)
    forged = {**checkpoint, "tree_size": 10**6}
    damaged = {**checkpoint, "root_hash": "not a hash"}
    result = verify_with(config, [("forged", forged), ("damaged", damaged), ("list", [])], None)
    unchecked = "signature not checked (no public key given)"
    assert [str(check) for check in result.checkpoints] == [
        f"checkpoint forged (tree_size 1000000): {unchecked}; FAILED: it covers 1000000 records but the log holds "
        "only 10: records were removed, or the checkpoint is not this log's (its signature was not checked)",
        f"checkpoint damaged (tree_size 10): {unchecked}; FAILED: this checkpoint is invalid: root_hash: expected 64 "
        'lowercase hex digits, got a string ("not a hash"); the log was not compared with it',
        f"checkpoint list (tree_size None): {unchecked}; FAILED: this checkpoint is invalid: expected an object, got "
        "an array; the log was not compared with it",
    ]
    assert [(c.tree_size, c.root_hash) for c in result.checkpoints] == [
        (10**6, checkpoint["root_hash"]),
        (10, "not a hash"),
        (None, None),
    ]


def test_a_persisted_tree_that_cannot_prove_consistency_is_named(config: Config, publish: Publish) -> None:
    publish(b.submitted("SO-1"), b.submitted("SO-2"), b.paid("SO-1"))
    first = checkpoint_of(config)
    publish(b.paid("SO-2"), b.submitted("SO-3"), b.paid("SO-3"), b.dispatched("SO-1"))
    checkpoint_of(config)
    needed = sorted(needed_nodes(lambda node: consistency_proof(3, 7, node)))
    assert len(needed) > 1
    level, index = needed[0]
    raw = RawStore(config.location)
    node = f"DELETE FROM {{p}}orderlog_merkle_nodes WHERE level = {level} AND idx = {index}"
    map_rows(raw, node.replace("DELETE FROM", "UPDATE").replace("WHERE", "SET hash = x'00' WHERE"))
    (check,) = verify_with(config, [("first", first)]).checkpoints
    assert check.problems == ["the consistency proof from size 3 to 7 does not verify: the persisted tree was altered"]
    map_rows(raw, node)
    (check,) = verify_with(config, [("first", first)]).checkpoints
    assert check.problems == [f"the persisted tree lacks node ({level}, {index}): run `orderlog audit verify`"]


def test_without_a_persisted_tree_a_checkpoint_is_checked_by_its_roots_alone(config: Config, publish: Publish) -> None:
    history(publish)
    checkpoint = checkpoint_of(config)
    RawStore(config.location).forget_tree()
    (check,) = verify_with(config, [("given", checkpoint)]).checkpoints
    assert (check.problems, check.consistency_hashes, check.map_root_checked) == ([], None, True)


# ---------------------------------------------------------------- the persisted map, as verification reads it


def test_a_map_entry_forged_with_the_nodes_above_it_is_named_once(config: Config, publish: Publish) -> None:
    history(publish)
    checkpoint = checkpoint_of(config)
    size, bucket = checkpoint["tree_size"], map_bucket("order", "SO-1")
    raw = RawStore(config.location)
    map_rows(raw, "UPDATE {p}orderlog_map_entries SET record_count = 9 WHERE stream_key = 'SO-1'")
    for level in range(MAP_DEPTH + 1):
        blank_map_node(raw, level, bucket >> level)
    head = json.loads(raw.rows()[-1][4])["hash"]
    assert [str(d) for d in verify_with(config, [("given", checkpoint)]).divergences] == [
        f"the map of stream heads persisted at tree size {size}: its entry for order SO-1 says 9 records, head "
        f"{head}; the log gives 5 records, head {head}: the map or the log was altered since it was built"
    ]


def test_altered_map_nodes_are_named_in_a_fixed_order(config: Config, publish: Publish) -> None:
    history(publish)
    checkpoint = checkpoint_of(config)
    bucket = map_bucket("order", "SO-1")
    raw = RawStore(config.location)
    for level in (9, 10):
        blank_map_node(raw, level, bucket >> level)
    where_map = f"the map of stream heads persisted at tree size {checkpoint['tree_size']}"
    assert [str(d) for d in verify(config).divergences] == [
        f"{where_map}: its node at level {level}, index {bucket >> level} is not the one rebuilt from the log: the "
        "map was altered since it was built"
        for level in (10, 9)  # ordered as text: "(10, ...)" before "(9, ...)"
    ]


def test_map_entries_of_any_type_or_of_no_stream_of_the_log_are_named(config: Config, publish: Publish) -> None:
    history(publish)
    checkpoint = checkpoint_of(config)
    size = checkpoint["tree_size"]
    raw = RawStore(config.location)
    heads = {json.loads(row[4])["key"]: json.loads(row[4])["hash"] for row in raw.rows()}
    map_rows(raw, "UPDATE {p}orderlog_map_entries SET record_count = 'many' WHERE stream_key = 'SO-1'")
    map_rows(
        raw,
        "INSERT INTO {p}orderlog_map_entries (tree_size, stream, stream_key, bucket, record_count, head_hash) "
        f"VALUES ({size}, 'order', 'SO-GHOST', {map_bucket('order', 'SO-GHOST')}, 1, '{'ab' * 32}')",
    )
    where_map = f"the map of stream heads persisted at tree size {size}"
    altered = "the map or the log was altered since it was built"
    assert [str(d) for d in verify(config).divergences] == [
        f"{where_map}: its entry for order SO-1 says many records, head {heads['SO-1']}; the log gives 5 records, "
        f"head {heads['SO-1']}: {altered}",
        f"{where_map}: its entry for order SO-GHOST says 1 records, head {'ab' * 32}; the log has no such stream: "
        f"{altered}",
    ]


# ---------------------------------------------------------------- the persisted map and tree, as checkpoints build them


def test_the_map_refuses_to_go_back_or_to_skip_and_keeps_its_root_without_changes(
    config: Config, publish: Publish
) -> None:
    history(publish)
    checkpoint = checkpoint_of(config)
    app = reopen(config)
    try:
        persisted, size = PersistedMap(app.database), checkpoint["tree_size"]
        with pytest.raises(AuditError) as back:
            persisted.advance({}, size - 1)
        assert str(back.value) == (
            f"the persisted map of stream heads is at tree size {size}, beyond the tree's {size - 1}: "
            "run `orderlog audit verify`"
        )
        with pytest.raises(AuditError) as skip:
            persisted.advance({("order", "SO-1"): HeadChange(7, 99, 7, "ab" * 32)}, size + 1)
        assert str(skip.value) == (
            "order SO-1 version 7 (store position 99) does not follow version 5, the last the map of stream heads "
            "holds for its stream: run `orderlog audit verify`"
        )
        assert persisted.advance({}, size + 1).hex() == checkpoint["map_root"]
        assert (persisted.root(size + 1) or b"").hex() == checkpoint["map_root"]
        assert persisted.root(size + 2) is None
    finally:
        app.close()


def test_the_map_reads_every_bucket_asked_for_in_lists_of_at_most_500(config: Config, publish: Publish) -> None:
    history(publish)
    checkpoint = checkpoint_of(config)
    raw = RawStore(config.location)
    heads = {}
    for row in raw.rows():
        record = json.loads(row[4])
        heads[map_bucket("order", record["key"])] = {("order", record["key"]): (record["version"], record["hash"])}
    app = reopen(config)
    try:
        assert PersistedMap(app.database).heads_in(range(MAP_BUCKETS), checkpoint["tree_size"]) == heads
    finally:
        app.close()


def test_a_tree_appended_in_chunks_is_the_tree_appended_at_once(
    config: Config, publish: Publish, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orderlog.audit import checkpoints

    history(publish)
    whole = checkpoint_of(config)
    RawStore(config.location).forget_tree()
    monkeypatch.setattr(checkpoints, "APPEND_CHUNK", 4)  # 10 records: chunks of 4, 4 and 2
    positions = [row[0] for row in RawStore(config.location).rows()]
    app = reopen(config)
    try:
        tree = extend_tree(app)
        assert (tree.size(), tree.root(10).hex()) == (10, whole["root_hash"])
        assert [leaf[0] for leaf in tree.leaves_between(0, 10, page=3)] == positions
        assert [leaf[0] for leaf in tree.leaves_between(2, 5)] == positions[2:5]
    finally:
        app.close()


def test_the_store_keeps_each_checkpoint_as_issued(config: Config, publish: Publish) -> None:
    history(publish)
    first = checkpoint_of(config)
    publish(b.submitted("SO-4"))
    second = checkpoint_of(config)
    app = reopen(config)
    try:
        assert stored_checkpoints(app) == [first, second]
    finally:
        app.close()


# ---------------------------------------------------------------- checkpoint files


def test_a_checkpoint_file_round_trips_and_a_bad_one_is_named_in_one_line(
    config: Config, publish: Publish, tmp_path: Path
) -> None:
    history(publish)
    checkpoint = checkpoint_of(config)
    (tmp_path / "files").mkdir()
    path = tmp_path / "files" / "checkpoint.json"
    text = write_checkpoint(checkpoint, path)
    assert text == json.dumps(checkpoint, indent=2) + "\n"
    assert path.read_text(encoding="utf-8") == text
    assert load_checkpoint(path) == checkpoint
    assert write_checkpoint(checkpoint, None) == text
    assert list(path.parent.iterdir()) == [path]
    missing = tmp_path / "files" / "missing.json"
    with pytest.raises(AuditError) as error:
        load_checkpoint(missing)
    assert str(error.value) == f"checkpoint file {missing}: no such file"
    path.write_text(json.dumps({**checkpoint, "tree_size": -1}), encoding="utf-8")
    with pytest.raises(AuditError) as error:
        load_checkpoint(path)
    assert str(error.value).startswith(f"checkpoint file {path}: tree_size: ")
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------- order proofs


def test_a_proof_names_the_log_key_it_was_made_for(config: Config, publish: Publish) -> None:
    history(publish)
    checkpoint = checkpoint_of(config)
    proof = proof_of(config, "SO-1", checkpoint)
    assert proof["log_public_key"] == PUBLIC
    assert check_proof(json.loads(json.dumps(proof)), "proof") == proof
    assert verify_proof(proof, checkpoint) == ([], [])


def test_each_reason_a_proof_cannot_be_made_is_named(config: Config, publish: Publish) -> None:
    history(publish)
    checkpoint = checkpoint_of(config)
    publish(b.submitted("SO-9"))
    size, raw = checkpoint["tree_size"], RawStore(config.location)
    app = reopen(config)

    def refusal(order_id: str, given: dict[str, Any]) -> str:
        with pytest.raises(AuditError) as error:
            order_proof(app, order_id, given, "")
        return str(error.value)

    try:
        assert refusal("SO-9", checkpoint) == (
            f"no record of order SO-9 is in the checkpointed log (tree_size {size}): issue a newer checkpoint"
        )
        assert refusal("SO-1", {**checkpoint, "tree_size": 99}) == (
            f"the checkpoint covers 99 records but this store's tree holds {size}: was it issued by this store?"
        )
        assert refusal("SO-1", {**checkpoint, "root_hash": "ab" * 32}) == (
            f"this store's first {size} records do not hash to the checkpoint's root_hash: was it issued by this "
            "store? (if it was, run `orderlog audit verify`)"
        )
        map_rows(raw, "DELETE FROM {p}orderlog_merkle_nodes WHERE level = 0 AND idx = 1")  # on SO-1's first path
        assert refusal("SO-1", checkpoint) == "the persisted tree lacks node (0, 1): run `orderlog audit verify`"
        for table in ("map_entries", "map_nodes"):
            map_rows(raw, f"DELETE FROM {{p}}orderlog_{table} WHERE tree_size = ?", (size,))
        assert refusal("SO-2", checkpoint) == (
            f"this store's map of stream heads at tree size {size} does not match the checkpoint's map_root: "
            "run `orderlog audit verify`"
        )
    finally:
        app.close()


def test_a_proof_from_a_map_that_lost_its_entry_fails_offline(config: Config, publish: Publish) -> None:
    history(publish)
    checkpoint = checkpoint_of(config)
    map_rows(RawStore(config.location), "DELETE FROM {p}orderlog_map_entries WHERE stream_key = 'SO-1'")
    proof = proof_of(config, "SO-1", checkpoint)
    assert proof["map"]["entries"] == []
    assert verify_proof(proof, checkpoint)[0]


def test_a_signed_record_of_a_source_the_store_does_not_know_lists_no_keys(config: Config, publish: Publish) -> None:
    history(publish)
    raw = RawStore(config.location)
    rewrite_with_valid_hashes(raw, raw.rows()[0], lambda record: record.update(signature="forged"))
    raw.forget_tree()
    checkpoint = checkpoint_of(config)
    proof = proof_of(config, "SO-1", checkpoint)
    assert proof["sources"] == {"test-source": []}
