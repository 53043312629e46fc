"""Tamper evidence on real stores: every kind of alteration made directly in the database
is detected by `audit verify` and named (order, version, store position, field or link)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderlog.audit.checkpoints import issue_checkpoint
from orderlog.audit.verification import Verification, verify_store
from orderlog.config import Config
from orderlog.publishing import LineResult
from orderlog.signing import public_pem
from tests import builders as b
from tests.conftest import reopen
from tests.tampering import RawStore, Row, forged_order_row, rewrite_with_valid_hashes

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
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    orders: int,
    payments: list[int],
    alteration: str,
    pick: int,
    offset: int,
) -> None:
    from orderlog.publishing import open_publisher
    from tests.conftest import POSTGRES_BASE, drop_schema, postgres_answers

    directory = tmp_path_factory.mktemp("alteration")
    if backend == "postgres":
        if reason := postgres_answers():
            pytest.skip(reason)
        import uuid

        url = f"{POSTGRES_BASE}?schema=a_{uuid.uuid4().hex[:12]}"
    else:
        url = f"sqlite:///{directory / 'store.db'}"
    config = Config(store_url=url, master_key_file=directory / "master.key")
    app, publisher = open_publisher(config, announce=lambda _m: None)
    try:
        lines = [b.submitted(f"SO-{n}") for n in range(orders)]
        lines += [b.paid(f"SO-{n % orders}", amount=10 + n, payment_id=f"P-{i}") for i, n in enumerate(payments)]
        for _ in publisher.publish(enumerate((b.line(x) for x in lines), 1)):
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
