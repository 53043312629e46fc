"""Proofs of completeness on real stores (SQLite and PostgreSQL): the map of stream heads
that checkpoints sign, built incrementally at each checkpoint, is the map built from
scratch; proofs against any checkpoint the store issued are complete; checkpoints from
before the map stay verifiable and prove inclusion only; records left off are caught."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderlog.audit import AuditError
from orderlog.audit.checkpoints import issue_checkpoint, stored_checkpoints
from orderlog.audit.persisted_map import PersistedMap
from orderlog.audit.proofs import order_proof
from orderlog.audit.stream_map import StreamMap
from orderlog.audit.verification import verify_store
from orderlog.audit_verify import checkpoint_payload, verify_proof
from orderlog.config import Config
from orderlog.sources.signing import sign
from tests import builders as b
from tests.conftest import open_intake, reopen
from tests.integration.test_audit import KEY, PUBLIC, Publish, checkpoint_of, fresh_store
from tests.tampering import RawStore


def five_records_of_so1(publish: Publish) -> None:
    publish(
        b.submitted("SO-1"),
        b.submitted("SO-2"),
        b.paid("SO-1", amount=400),
        b.paid("SO-2", amount=1000),
        b.paid("SO-1", amount=600, payment_id="P-2"),
        b.dispatched("SO-1"),
        b.refunded("SO-1", amount=100, refund_id="R-1"),
    )


def proof_of(config: Config, order_id: str, checkpoint: dict[str, Any]) -> dict[str, Any]:
    app = reopen(config)
    try:
        return order_proof(app, order_id, checkpoint, PUBLIC)
    finally:
        app.close()


def map_from_scratch(config: Config, size: int) -> bytes:
    """The map root at `size` computed from the log's first `size` records alone."""
    heads: dict[tuple[str, str], tuple[str, str, int, str]] = {}
    for row in RawStore(config.location).rows()[:size]:
        record = json.loads(row[4])
        heads[record["stream"], record["key"]] = (record["stream"], record["key"], record["version"], record["hash"])
    built = StreamMap()
    built.put(heads.values())
    return built.root()


def test_a_proof_is_complete_and_its_map_entry_is_the_orders_head(config: Config, publish: Publish) -> None:
    five_records_of_so1(publish)
    checkpoint = checkpoint_of(config)
    assert checkpoint["map_root"] == map_from_scratch(config, checkpoint["tree_size"]).hex()
    proof = proof_of(config, "SO-1", checkpoint)
    assert verify_proof(proof, checkpoint) == ([], [])
    versions = [event["record"]["version"] for event in proof["events"]]
    entry = next(e for e in proof["map"]["entries"] if e[:2] == ["order", "SO-1"])
    assert versions == [1, 2, 3, 4, 5] and entry == ["order", "SO-1", 5, proof["events"][-1]["record"]["hash"]]


@pytest.mark.parametrize(
    ("attack", "expected"),
    [
        (lambda p: p["events"].pop(), "the proof ends at version 4, but the checkpoint's map holds 5 records"),
        (lambda p: p["events"].pop(0), "the proof starts at version 2: version 1 is missing"),
        (lambda p: p["events"].pop(2), "version 3 of order SO-1 is missing from the proof"),
        (lambda p: p["events"].insert(1, p["events"].pop(3)), "comes after version 4 (events[1])"),
        (
            lambda p: p["map"]["entries"][0].__setitem__(2, 9),
            "the map proof does not lead to the checkpoint's map_root",
        ),
        (lambda p: p["map"].__setitem__("bucket", p["map"]["bucket"] ^ 1), "the map proof is for bucket"),
    ],
    ids=["last", "first", "middle", "reorder", "forged-entry", "wrong-bucket"],
)
def test_records_left_off_a_real_proof_are_caught(
    config: Config, publish: Publish, attack: Callable[[dict[str, Any]], Any], expected: str
) -> None:
    five_records_of_so1(publish)
    checkpoint = checkpoint_of(config)
    proof = proof_of(config, "SO-1", checkpoint)
    attack(proof)
    problems, _ = verify_proof(proof, checkpoint)
    assert any(expected in problem for problem in problems), problems


def test_another_orders_record_swapped_into_a_proof_is_named(config: Config, publish: Publish) -> None:
    five_records_of_so1(publish)
    publish(b.dispatched("SO-2"), b.refunded("SO-2", amount=10, refund_id="R-9"))
    checkpoint = checkpoint_of(config)
    proof, other = proof_of(config, "SO-1", checkpoint), proof_of(config, "SO-2", checkpoint)
    proof["events"][2] = other["events"][2]
    problems, _ = verify_proof(proof, checkpoint)
    assert problems == [
        "events[2] (order SO-2 version 3) is a record of order SO-2, not of order SO-1",
        "version 3 of order SO-1 is missing from the proof",
    ]


def test_proofs_against_an_older_checkpoint_read_the_map_as_it_was(config: Config, publish: Publish) -> None:
    five_records_of_so1(publish)
    old = checkpoint_of(config)
    publish(
        b.refunded("SO-1", amount=50, refund_id="R-2"), b.paid("SO-2", amount=5, payment_id="P-9"), b.submitted("SO-3")
    )
    new = checkpoint_of(config)
    then, now = proof_of(config, "SO-1", old), proof_of(config, "SO-1", new)
    assert verify_proof(then, old)[0] == [] and verify_proof(now, new)[0] == []
    assert (len(then["events"]), then["records_after_checkpoint"], len(now["events"])) == (5, 1, 6)
    assert verify_proof(then, new)[0] == [
        f"the proof was made against another checkpoint: its tree_size is {old['tree_size']}, the checkpoint's is "
        f"{new['tree_size']}"
    ]
    for checkpoint in (old, new):
        assert checkpoint["map_root"] == map_from_scratch(config, checkpoint["tree_size"]).hex()


def test_a_checkpoint_from_before_the_map_stays_verifiable_and_proves_inclusion_only(
    config: Config, publish: Publish
) -> None:
    five_records_of_so1(publish)
    issued = checkpoint_of(config)
    legacy = {k: issued[k] for k in ("tree_size", "root_hash", "issued_at", "key_id")}
    legacy["signature"] = sign(KEY, checkpoint_payload(legacy))  # what a release before the map signed
    raw = RawStore(config.location)
    with raw.cursor() as cursor:  # the store as that release left it: no map, that checkpoint kept
        for table in ("map_entries", "map_nodes", "checkpoint_maps"):
            cursor.execute(f"DELETE FROM {raw.prefix}orderlog_{table}")
        cursor.execute(raw.sql(f"UPDATE {raw.prefix}orderlog_checkpoints SET signature = ?"), (legacy["signature"],))
    app = reopen(config)
    assert stored_checkpoints(app) == [legacy]
    proof = order_proof(app, "SO-1", legacy, PUBLIC)
    assert "map" not in proof and verify_proof(proof, legacy) == ([], [])
    result = verify_store(app, [("old.json", legacy)], PUBLIC)
    assert result.ok, result.headline()
    assert "it has no map_root (issued before the map of stream heads)" in str(result.checkpoints[0])

    publish(b.refunded("SO-1", amount=50, refund_id="R-2"))
    newer = issue_checkpoint(app, KEY)  # builds the map from scratch over the whole log
    assert newer["map_root"] == map_from_scratch(config, newer["tree_size"]).hex()
    assert verify_proof(order_proof(app, "SO-1", newer, PUBLIC), newer) == ([], [])
    result = verify_store(app, [("old.json", legacy), ("new.json", newer)], PUBLIC)
    assert result.ok, result.headline()
    assert [c.map_root_checked for c in result.checkpoints] == [False, True]
    app.close()


def test_a_proof_is_refused_for_an_order_the_store_does_not_hold(config: Config, publish: Publish) -> None:
    five_records_of_so1(publish)
    checkpoint = checkpoint_of(config)
    app = reopen(config)
    try:
        with pytest.raises(AuditError, match=r"^order SO-404 not found in "):
            order_proof(app, "SO-404", checkpoint, PUBLIC)
        forged = {**checkpoint, "tree_size": 3}
        with pytest.raises(AuditError, match=r"^this checkpoint is invalid: its signature does not verify"):
            order_proof(app, "SO-1", forged, PUBLIC)
    finally:
        app.close()


def test_a_checkpoint_refuses_to_sign_a_count_over_a_gap(config: Config, publish: Publish) -> None:
    five_records_of_so1(publish)
    checkpoint_of(config)
    publish(b.refunded("SO-1", amount=50, refund_id="R-2"), b.refunded("SO-1", amount=20, refund_id="R-3"))
    raw = RawStore(config.location)
    sixth = raw.rows()[-2]
    raw.delete(sixth[0])  # version 6 of SO-1 gone before anything covered it
    with pytest.raises(AuditError, match=r"order SO-1 version 7 \(store position \d+\) does not follow version 5"):
        checkpoint_of(config)


# ---------------------------------------------------------------- random histories, several checkpoints


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    batches=st.lists(
        st.lists(st.tuples(st.integers(0, 5), st.integers(1, 500)), min_size=0, max_size=6), min_size=1, max_size=4
    ),
    data=st.data(),
)
def test_the_map_built_at_each_checkpoint_is_the_map_built_from_scratch(
    backend: str,
    tmp_path_factory: pytest.TempPathFactory,
    batches: list[list[tuple[int, int]]],
    data: st.DataObject,
) -> None:
    with fresh_store(backend, tmp_path_factory, "map") as config:
        check_map_at_each_checkpoint(config, batches, data)


def check_map_at_each_checkpoint(config: Config, batches: list[list[tuple[int, int]]], data: st.DataObject) -> None:
    app, publisher = open_intake(config)
    try:
        checkpoints, opened = [], set()
        for batch in batches:
            lines = []
            for order, amount in batch:
                if order not in opened:
                    opened.add(order)
                    lines.append(b.submitted(f"SO-{order}"))
                lines.append(b.paid(f"SO-{order}", amount=amount, payment_id=f"P-{uuid.uuid4().hex[:8]}"))
            for _ in publisher.take(enumerate((b.line(x) for x in lines), 1)):
                pass
            checkpoints.append(issue_checkpoint(app, KEY))
        persisted = PersistedMap(app.database)
        for checkpoint in checkpoints:
            assert checkpoint["map_root"] == map_from_scratch(config, checkpoint["tree_size"]).hex()
            assert (persisted.root(checkpoint["tree_size"]) or b"").hex() == checkpoint["map_root"]
        result = verify_store(reopen(config), [(str(n), c) for n, c in enumerate(checkpoints)], PUBLIC)
        assert result.ok, result.headline()
        if opened:  # any single record removed from any order's proof, against any checkpoint, is caught
            checkpoint = data.draw(st.sampled_from([c for c in checkpoints if c["tree_size"] > 0]))
            order = data.draw(st.sampled_from(sorted(opened)))
            try:
                proof = order_proof(app, f"SO-{order}", checkpoint, PUBLIC)
            except AuditError:  # the order came after this checkpoint
                return
            assert verify_proof(proof, checkpoint)[0] == []
            removed = copy.deepcopy(proof)
            del removed["events"][data.draw(st.integers(0, len(proof["events"]) - 1))]
            assert verify_proof(removed, checkpoint)[0], "a removed record went unnoticed"
    finally:
        app.close()
