"""Tamper evidence on real stores: every kind of alteration made directly in the database
is detected by `audit verify` and named (order, version, store position, field or link)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderlog.audit.checkpoints import issue_checkpoint
from orderlog.audit.verification import Verification, verify_store
from orderlog.config import Config
from orderlog.intake.outcomes import LineResult
from orderlog.sources.signing import public_pem
from tests import builders as b
from tests.conftest import POSTGRES_BASE, drop_schema, open_intake, postgres_answers, reopen
from tests.tampering import RawStore, Row, forged_order_row, reseal, rewrite_with_valid_hashes

Publish = Callable[..., list[LineResult]]
KEY = Ed25519PrivateKey.generate()
PUBLIC = public_pem(KEY).decode()


def history(publish: Publish) -> None:
    """Three orders with interleaved records: 10 records in all."""
    publish(
        b.submitted("SO-1"),
        b.submitted("SO-2"),
        b.paid("SO-1", amount=1000),
        b.submitted("SO-3"),
        b.paid("SO-2", amount=400),
        b.dispatched("SO-1"),
        b.paid("SO-2", amount=600, payment_id="P-2"),
        b.cancelled("SO-3"),
        b.delivered("SO-1"),
    )


def verify(config: Config, checkpoint: dict[str, Any] | None = None) -> Verification:
    app = reopen(config)
    try:
        return verify_store(app, [("given", checkpoint)] if checkpoint else [], PUBLIC)
    finally:
        app.close()


def checkpoint_of(config: Config) -> dict[str, Any]:
    app = reopen(config)
    try:
        return issue_checkpoint(app, KEY)
    finally:
        app.close()


def record_at(raw: RawStore, index: int) -> tuple[Row, dict[str, Any]]:
    row = raw.rows()[index]
    return row, json.loads(row[4])


def test_an_untouched_store_verifies(config: Config, publish: Publish) -> None:
    history(publish)
    checkpoint = checkpoint_of(config)
    publish(b.paid("SO-3", amount=5, payment_id="P-late"))
    result = verify(config, checkpoint)
    assert result.ok, result.headline()
    assert (result.events, result.orders) == (11, 3)
    assert result.headline() == f"verified 11 events in 3 orders, root {result.root}"
    (check,) = result.checkpoints
    assert check.signature == "valid" and check.problems == []


def test_a_later_checkpoint_is_proven_to_extend_an_earlier_one(config: Config, publish: Publish) -> None:
    history(publish)
    first = checkpoint_of(config)
    publish(b.refunded("SO-2", amount=1000), b.submitted("SO-4"))
    checkpoint_of(config)
    result = verify(config, first)
    assert result.ok
    assert result.checkpoints[0].consistency_hashes and result.checkpoints[0].consistency_hashes > 0


# ---------------------------------------------------------------- each kind of alteration


def test_a_changed_byte_of_data_is_named(config: Config, publish: Publish) -> None:
    history(publish)
    raw = RawStore(config.location)
    row, _ = record_at(raw, 2)  # SO-1 version 2, the payment
    raw.set_state(row[0], row[4].replace(b'"amount":1000', b'"amount":9000'))
    result = verify(config)
    assert not result.ok
    assert str(result.divergences[0]) == (
        f"order SO-1 version 2 (store position {row[0]}): its hash does not match "
        "its content: the record was altered after it was written"
    )


def test_a_changed_timestamp_is_named(config: Config, publish: Publish) -> None:
    history(publish)
    raw = RawStore(config.location)
    row, record = record_at(raw, 5)
    raw.set_state(row[0], row[4].replace(record["occurred_at"].encode(), b"2020-01-01T00:00:00.000Z"))
    result = verify(config)
    assert result.divergences[0].position == row[0]
    assert "hash does not match its content" in result.divergences[0].what


def test_a_deleted_event_in_the_middle_of_a_chain_is_named(config: Config, publish: Publish) -> None:
    history(publish)
    raw = RawStore(config.location)
    row, _ = record_at(raw, 4)  # SO-2 version 2; version 3 follows later
    raw.delete(row[0])
    result = verify(config)
    assert not result.ok
    assert any(
        "order SO-2 version 3" in d.where and "version 2 of this stream is missing" in d.what
        for d in result.divergences
    )


def test_the_deleted_last_event_of_an_order_is_caught_by_the_tree(config: Config, publish: Publish) -> None:
    history(publish)
    checkpoint = checkpoint_of(config)
    raw = RawStore(config.location)
    row, _ = record_at(raw, -1)  # the very last record: no chain link points at it
    raw.delete(row[0])
    result = verify(config, checkpoint)
    assert not result.ok
    assert "were removed" in result.divergences[0].what and f"store position {row[0]}" in result.divergences[0].where
    assert "records were removed" in " ".join(result.checkpoints[0].problems)


def test_two_swapped_events_are_named(config: Config, publish: Publish) -> None:
    history(publish)
    checkpoint_of(config)
    raw = RawStore(config.location)
    rows = raw.rows()
    raw.swap(rows[1], rows[2])  # SO-2 v1 and SO-1 v2 change places; each chain stays in order
    result = verify(config)
    assert not result.ok
    assert result.divergences[0].position == rows[1][0]
    assert "the Merkle tree recorded" in result.divergences[0].what


def test_a_forged_event_inserted_into_the_log_is_named(config: Config, publish: Publish) -> None:
    history(publish)
    checkpoint_of(config)
    raw = RawStore(config.location)
    rows = raw.rows()
    raw.insert_at(rows[3][0], forged_order_row(json.loads(rows[3][4]), "SO-FORGED"))
    result = verify(config)
    assert not result.ok
    assert result.divergences[0].position == rows[3][0]


def test_an_edit_that_recomputes_every_hash_is_caught_only_by_a_checkpoint(config: Config, publish: Publish) -> None:
    history(publish)
    checkpoint = checkpoint_of(config)
    raw = RawStore(config.location)
    row, _ = record_at(raw, 2)
    rewrite_with_valid_hashes(raw, row, lambda record: record["data"].update(amount=1))
    raw.forget_tree()
    assert verify(config).ok  # inside the store, a thorough forgery leaves no trace...
    result = verify(config, checkpoint)  # ...but the checkpoint that left the system catches it
    assert not result.ok
    assert result.headline() == "FAILED: the log does not extend checkpoint given (details below)"
    assert "records were altered, removed or inserted since it was issued" in result.checkpoints[0].problems[0]


def test_a_checkpoint_is_refused_over_a_record_that_fails_its_own_hash(config: Config, publish: Publish) -> None:
    from orderlog.audit import AuditError

    history(publish)
    raw = RawStore(config.location)
    row, _ = record_at(raw, 4)
    raw.set_state(row[0], row[4].replace(b'"amount":400', b'"amount":401'))
    with pytest.raises(
        AuditError, match=rf"order SO-2 version 2 \(store position {row[0]}\) does not match its own hash"
    ):
        checkpoint_of(config)


def test_a_forged_checkpoint_signature_fails(config: Config, publish: Publish) -> None:
    history(publish)
    checkpoint = {**checkpoint_of(config), "tree_size": 3}
    result = verify(config, checkpoint)
    assert result.checkpoints[0].signature == "INVALID"


# ---------------------------------------------------------------- random histories, one random alteration


ALTERATIONS = ["byte", "timestamp", "delete", "swap", "insert", "rehash"]


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    orders=st.integers(2, 6),
    payments=st.lists(st.integers(0, 5), min_size=1, max_size=8),
    alteration=st.sampled_from(ALTERATIONS),
    pick=st.integers(0, 10**6),
    offset=st.integers(0, 10**6),
)
def test_any_single_alteration_of_a_random_history_is_detected(
    backend: str,
    tmp_path_factory: pytest.TempPathFactory,
    orders: int,
    payments: list[int],
    alteration: str,
    pick: int,
    offset: int,
) -> None:
    with fresh_store(backend, tmp_path_factory, "alteration") as config:
        app, publisher = open_intake(config)
        try:
            lines = [b.submitted(f"SO-{n}") for n in range(orders)]
            lines += [b.paid(f"SO-{n % orders}", amount=10 + n, payment_id=f"P-{i}") for i, n in enumerate(payments)]
            for _ in publisher.take(enumerate((b.line(x) for x in lines), 1)):
                pass
            checkpoint = issue_checkpoint(app, KEY)
            _alter(RawStore(config.location), alteration, pick, offset)
            result = verify_store(reopen(config), [("given", checkpoint)], PUBLIC)
            assert not result.ok, f"{alteration} went unnoticed"
            if alteration != "rehash":  # caught inside the store too, and named, without any checkpoint
                alone = verify_store(reopen(config), [], PUBLIC)
                assert alone.divergences and alone.divergences[0].position is not None
        finally:
            app.close()


def test_every_byte_of_a_stored_record_is_covered(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A flipped bit anywhere in a stored record fails verification, the framing bytes after
    the hash included (the fast path once read past a changed closing `"}`: found by the
    random-alteration test above, one run in many)."""
    with fresh_store("sqlite", tmp_path_factory, "every-byte") as config:
        app, publisher = open_intake(config)
        try:
            for _ in publisher.take(enumerate([b.line(b.submitted("SO-0"))], 1)):
                pass
        finally:
            app.close()
        raw = RawStore(config.location)
        row = raw.rows()[0]
        unnoticed = []
        for position in range(len(row[4])):
            raw.set_state(
                row[0], row[4][:position] + bytes([row[4][position] ^ 1 << position % 7]) + row[4][position + 1 :]
            )
            if verify_store(reopen(config), [], PUBLIC).ok:
                unnoticed.append(position)
        raw.set_state(row[0], row[4])
        assert verify_store(reopen(config), [], PUBLIC).ok
        assert unnoticed == [], f"bytes {unnoticed} of {len(row[4])} changed unnoticed"


@contextmanager
def fresh_store(backend: str, tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Config]:
    """A new store for each hypothesis example (function-scoped fixtures would be shared by all
    examples); a PostgreSQL schema is dropped afterwards."""
    directory = tmp_path_factory.mktemp(name)
    if backend == "postgres":
        if reason := postgres_answers():
            pytest.skip(reason)
        url = f"{POSTGRES_BASE}?schema={name[0]}_{uuid.uuid4().hex[:12]}"
    else:
        url = f"sqlite:///{directory / 'store.db'}"
    config = Config(store_url=url, master_key_file=directory / "master.key")
    try:
        yield config
    finally:
        if backend == "postgres":
            drop_schema(config.location)


def _alter(raw: RawStore, alteration: str, pick: int, offset: int) -> None:
    rows = raw.rows()
    row = rows[pick % len(rows)]
    record = json.loads(row[4])
    if alteration == "byte":
        position = offset % len(row[4])
        changed = bytes([row[4][position] ^ (1 << (offset % 7))])
        raw.set_state(row[0], row[4][:position] + changed + row[4][position + 1 :])
    elif alteration == "timestamp":
        raw.set_state(row[0], row[4].replace(record["recorded_at"].encode(), b"1999-12-31T23:59:59.999Z", 1))
    elif alteration == "delete":
        raw.delete(row[0])
    elif alteration == "swap":
        other = rows[(pick + 1 + offset % (len(rows) - 1)) % len(rows)]
        raw.swap(row, other)
    elif alteration == "insert":
        raw.insert_at(row[0], forged_order_row(record, f"SO-FORGED-{offset}"))
    else:
        rewrite_with_valid_hashes(raw, row, lambda r: r.update(source=f"forged-{offset}"))
        raw.forget_tree()


# ---------------------------------------------------------------- links, swaps and reorders, named exactly


def test_a_broken_prev_hash_is_named_even_when_the_record_hash_was_recomputed(config: Config, publish: Publish) -> None:
    history(publish)  # no checkpoint: only the chain can tell
    raw = RawStore(config.location)
    rows = raw.rows()
    last, _ = record_at(raw, -1)  # order SO-1 version 5: no record links to it
    record = json.loads(last[4])
    raw.set_state(last[0], reseal({**record, "prev_hash": "ab" * 32}))
    middle, _ = record_at(raw, 4)  # order SO-2 version 2: version 3 links to its old hash
    raw.set_state(middle[0], reseal({**json.loads(middle[4]), "prev_hash": "cd" * 32}))
    first, _ = record_at(raw, 3)  # order SO-3 version 1
    raw.set_state(first[0], reseal({**json.loads(first[4]), "prev_hash": "ef" * 32}))
    result = verify(config)
    assert [str(d) for d in result.divergences] == [
        f"order SO-3 version 1 (store position {first[0]}): its prev_hash is not the genesis hash",
        f"order SO-2 version 2 (store position {middle[0]}): its prev_hash does not link to version 1",
        f"order SO-2 version 3 (store position {rows[6][0]}): its prev_hash does not link to version 2",
        f"order SO-3 version 2 (store position {rows[7][0]}): its prev_hash does not link to version 1",
        f"order SO-1 version 5 (store position {last[0]}): its prev_hash does not link to version 4",
    ]


def test_two_records_of_different_orders_swapped_are_named_as_a_swap(config: Config, publish: Publish) -> None:
    history(publish)
    checkpoint_of(config)
    raw = RawStore(config.location)
    rows = raw.rows()
    first, second = rows[1][0], rows[2][0]  # order SO-2 version 1, order SO-1 version 2
    raw.swap(rows[1], rows[2])
    result = verify(config)
    assert [str(d) for d in result.divergences] == [
        f"order SO-1 version 2 (store position {first}): it and order SO-2 version 1 swapped places since the "
        f"checkpoint: the Merkle tree recorded that record at this store position and this one at store position "
        f"{second}",
        f"order SO-2 version 1 (store position {second}): it and order SO-1 version 2 swapped places since the "
        f"checkpoint: the Merkle tree recorded that record at this store position and this one at store position "
        f"{first}",
    ]


def test_two_records_of_one_order_swapped_are_named_reordered_not_removed(config: Config, publish: Publish) -> None:
    history(publish)  # no checkpoint: the chain alone tells the order
    raw = RawStore(config.location)
    rows = raw.rows()
    early, late = rows[0][0], rows[2][0]  # order SO-1 versions 1 and 2
    raw.swap(rows[0], rows[2])
    result = verify(config)
    assert [str(d) for d in result.divergences] == [
        f"order SO-1 version 2 (store position {early}): it comes before version 1 of its stream, which is at "
        f"store position {late}: the records were reordered",
        f"order SO-1 version 1 (store position {late}): it comes after version 2 of its stream (store position "
        f"{early}): the records were reordered",
    ]


def test_a_reordered_record_with_a_broken_link_is_named_for_the_link_too(config: Config, publish: Publish) -> None:
    """Swapped records are reordered; one that was also altered and re-hashed, with any link,
    breaks the chain on both sides of the gap it fills, and each broken link is named."""
    history(publish)  # no checkpoint: the chain alone tells
    raw = RawStore(config.location)
    rows = raw.rows()
    early, late = rows[0][0], rows[2][0]  # order SO-1 versions 1 and 2
    altered = json.loads(rows[0][4])
    altered["data"]["total"] += 1
    raw.set_state(early, reseal({**altered, "prev_hash": "ab" * 32}))
    raw.swap(raw.rows()[0], raw.rows()[2])
    result = verify(config)
    assert sorted(str(d) for d in result.divergences) == sorted(
        [
            f"order SO-1 version 2 (store position {early}): it comes before version 1 of its stream, which is at "
            f"store position {late}: the records were reordered",
            f"order SO-1 version 1 (store position {late}): it comes after version 2 of its stream (store position "
            f"{early}): the records were reordered",
            f"order SO-1 version 1 (store position {late}): its prev_hash is not the genesis hash",
            f"order SO-1 version 2 (store position {early}): its prev_hash does not link to version 1",
        ]
    )


def test_records_reordered_across_a_gap_of_several_versions_check_every_link(config: Config, publish: Publish) -> None:
    """Version 3 first, then 1 and 2: the links 0-1, 1-2 and 2-3 are all checked, and a
    well-linked history is named only as reordered."""
    history(publish)
    raw = RawStore(config.location)
    so1 = [row for row in raw.rows() if json.loads(row[4])["key"] == "SO-1"]  # versions 1..4 at positions p0..p3
    positions = [row[0] for row in so1[:3]]
    with raw.cursor() as cursor:  # v3, v1, v2 in the places of v1, v2, v3
        for row in so1[:3]:
            cursor.execute(raw.sql(f"DELETE FROM {raw.events} WHERE {raw.position} = ?"), (row[0],))
        for position, row in zip(positions, (so1[2], so1[0], so1[1]), strict=True):
            raw._insert(cursor, position, row)
    result = verify(config)
    assert [d.what for d in result.divergences if "prev_hash" in d.what] == []
    assert {d.what.split(":")[-1].strip() for d in result.divergences} == {"the records were reordered"}


# ---------------------------------------------------------------- the persisted map of stream heads


def map_rows(raw: RawStore, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with raw.cursor() as cursor:
        cursor.execute(raw.sql(sql.format(p=raw.prefix)), params)
        return list(cursor.fetchall()) if cursor.description else []


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (
            "UPDATE {p}orderlog_map_entries SET record_count = 6 WHERE stream_key = 'SO-1'",
            "its entry for order SO-1 says 6 records, head {so1}; the log gives 5 records, head {so1}: the map or "
            "the log was altered since it was built",
        ),
        (
            "UPDATE {p}orderlog_map_entries SET head_hash = '" + "0" * 64 + "' WHERE stream_key = 'SO-2'",
            "its entry for order SO-2 says 3 records, head " + "0" * 64 + "; the log gives 3 records, head {so2}: "
            "the map or the log was altered since it was built",
        ),
        (
            "UPDATE {p}orderlog_map_entries SET bucket = bucket + 1 WHERE stream_key = 'SO-3'",
            "its entry for order SO-3 is in bucket {so3_next}, not in the stream's bucket {so3_bucket}",
        ),
        (
            "DELETE FROM {p}orderlog_map_entries WHERE stream_key = 'SO-3'",
            "it holds no entry for order SO-3, which changed since the size before; the log gives 2 records, "
            "head {so3}",
        ),
        (
            "UPDATE {p}orderlog_map_nodes SET hash = {blank} WHERE level = 9 AND idx = {so1_level9}",
            "its node at level 9, index {so1_level9} is not the one rebuilt from the log: the map was altered since "
            "it was built",
        ),
        (
            "INSERT INTO {p}orderlog_map_entries (tree_size, stream, stream_key, bucket, record_count, head_hash) "
            "VALUES (3, 'order', 'SO-1', {so1_bucket}, 1, '{so1}')",
            "it holds rows at a size where no map was built (no root there): they were added since",
        ),
    ],
    ids=["count", "head", "bucket", "missing-entry", "node", "stray-row"],
)
def test_a_tampered_persisted_map_is_named(config: Config, publish: Publish, tamper: str, expected: str) -> None:
    from orderlog.audit_verify import map_bucket

    history(publish)
    checkpoint = checkpoint_of(config)
    raw = RawStore(config.location)
    heads = {json.loads(row[4])["key"]: json.loads(row[4])["hash"] for row in raw.rows()}
    values = {
        "so1": heads["SO-1"],
        "so2": heads["SO-2"],
        "so3": heads["SO-3"],
        "so1_bucket": map_bucket("order", "SO-1"),
        "so1_level9": map_bucket("order", "SO-1") >> 9,
        "so3_bucket": map_bucket("order", "SO-3"),
        "so3_next": map_bucket("order", "SO-3") + 1,
        "blank": "'\\x00'::bytea" if raw.postgres else "x'00'",
    }
    map_rows(raw, tamper.format(p=raw.prefix, **values))
    result = verify(config, checkpoint)
    where = f"the map of stream heads persisted at tree size {checkpoint['tree_size']}"
    if "no map was built" in expected:
        where = "the map of stream heads persisted at tree size 3"
    assert not result.ok
    assert f"{where}: {expected.format(**values)}" in [str(d) for d in result.divergences]
    assert result.checkpoints[0].problems == [] and not result.checkpoints[0].invalid  # the checkpoint still holds


def test_a_map_a_checkpoint_signs_but_the_store_lost_is_named(config: Config, publish: Publish) -> None:
    history(publish)
    checkpoint = checkpoint_of(config)
    raw = RawStore(config.location)
    for table in ("map_entries", "map_nodes"):
        map_rows(raw, f"DELETE FROM {{p}}orderlog_{table} WHERE tree_size = ?", (checkpoint["tree_size"],))
    result = verify(config, checkpoint)
    assert [str(d) for d in result.divergences] == [
        f"the map of stream heads persisted at tree size {checkpoint['tree_size']}: missing, though a checkpoint "
        "signs its root: its rows were removed, and proofs against that checkpoint cannot be made"
    ]
    assert result.checkpoints[0].map_root_checked  # the log still gives the signed map


# ---------------------------------------------------------------- an invalid checkpoint is not blamed on the log


def test_an_invalid_checkpoint_is_named_invalid_and_the_log_is_not_blamed(config: Config, publish: Publish) -> None:
    history(publish)
    forged = {**checkpoint_of(config), "tree_size": 10**6}  # bigger than the log, and not what was signed
    result = verify(config, forged)
    (check,) = result.checkpoints
    assert (check.signature, check.problems) == ("INVALID", [])
    assert result.headline() == (
        f"FAILED: checkpoint given is invalid: its signature does not verify with key {forged['key_id']}: it was "
        "altered after signing, or never signed"
    )
    assert "removed" not in str(check) and "does not extend" not in result.headline()


def test_without_a_public_key_a_mismatch_may_be_the_checkpoints_and_says_so(config: Config, publish: Publish) -> None:
    history(publish)
    forged = {**checkpoint_of(config), "tree_size": 10**6}
    app = reopen(config)
    try:
        result = verify_store(app, [("given", forged)], None)
    finally:
        app.close()
    (check,) = result.checkpoints
    assert check.signature == "not checked (no public key given)"
    assert check.problems == [
        "it covers 1000000 records but the log holds only 10: records were removed, or the checkpoint is not this "
        "log's (its signature was not checked)"
    ]
    assert result.headline().startswith(
        "FAILED: the log does not match checkpoint given, whose signature was not checked (no public key given)"
    )


def test_a_valid_checkpoint_beyond_the_log_blames_the_log(config: Config, publish: Publish) -> None:
    history(publish)
    checkpoint = checkpoint_of(config)
    raw = RawStore(config.location)
    raw.delete(raw.rows()[-1][0])
    result = verify(config, checkpoint)
    assert result.checkpoints[0].signature == "valid"
    assert result.checkpoints[0].problems == ["it covers 10 records but the log holds only 9: records were removed"]


def test_a_checkpoint_whose_map_root_does_not_match_the_log_is_named(config: Config, publish: Publish) -> None:
    history(publish)
    checkpoint = checkpoint_of(config)
    altered = {**checkpoint, "map_root": "ab" * 32}
    assert verify(config, altered).checkpoints[0].signature == "INVALID"  # signed: it cannot be altered unseen
    app = reopen(config)
    try:
        (check,) = verify_store(app, [("given", altered)], None).checkpoints
    finally:
        app.close()
    assert check.problems == [
        f"its map_root {'ab' * 32} is not the map of the log's stream heads at this size ({checkpoint['map_root']}), "
        "though its root_hash is the log's, or the checkpoint is not this log's (its signature was not checked)"
    ]


def test_a_damaged_checkpoint_kept_in_the_store_is_named_invalid(config: Config, publish: Publish) -> None:
    history(publish)
    checkpoint_of(config)
    raw = RawStore(config.location)
    map_rows(raw, "UPDATE {p}orderlog_checkpoints SET root_hash = 'not a hash'")
    app = reopen(config)
    try:
        from orderlog.audit.checkpoints import stored_checkpoints

        kept = [(f"kept #{c['tree_size']}", c) for c in stored_checkpoints(app)]
        result = verify_store(app, kept, PUBLIC)
    finally:
        app.close()
    assert result.headline() == (
        'FAILED: checkpoint kept #10 is invalid: root_hash: expected 64 lowercase hex digits, got a string ("not a '
        'hash")'
    )


def test_the_latest_checkpoints_are_the_last_of_all_of_them_oldest_first(config: Config, publish: Publish) -> None:
    history(publish)
    for amount in (5, 6, 7):
        checkpoint_of(config)
        publish(b.paid("SO-3", amount=amount, payment_id=f"P-{amount}"))
    app = reopen(config)
    try:
        every = app.checkpoints()
        assert [checkpoint["tree_size"] for checkpoint in every] == [10, 11, 12]
        assert app.checkpoints(latest=2) == every[-2:]
        assert app.checkpoints(latest=1) == every[-1:]
        assert app.checkpoints(latest=5) == every
    finally:
        app.close()
