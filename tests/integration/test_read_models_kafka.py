"""The views are the same whichever source they are folded from: the store's log, or
`orderlog.events` through a Kafka consumer group (records of different streams then arrive
interleaved differently, partition by partition)."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderlog.bootstrap import open_orderlog
from orderlog.config import Config
from orderlog.kafka.assignment import Assignment
from orderlog.kafka.registry import LocalSchemaIds
from orderlog.simulate import simulate
from orderlog.store.location import parse_store_url
from projections import PROJECTORS
from projections.cancellations import Cancellations
from projections.holds import Holds
from projections.service import open_views, project
from projections.sources import REBALANCE_SECONDS, KafkaSource, LogSource
from projections.status import OrderStatus
from projections.viewstore import ViewStore
from tests.integration.test_kafka_backbone import publish_lines, relay_once
from tests.kafka_helpers import kafka_config

pytestmark = pytest.mark.kafka
publish = publish_lines  # the backbone tests' helpers, named for what these tests do with them
relay = relay_once


def fold_from_log(config: Config, views: ViewStore) -> None:
    app = open_orderlog(config)
    try:
        project(views, list(PROJECTORS.values()), LogSource(app.log_reader, batch=97), follow=False)
    finally:
        app.close()


def fold_from_kafka(config: Config, views: ViewStore, group: str, kinds: list[Any] | None = None) -> None:
    kinds = kinds or list(PROJECTORS.values())
    whole_topic = not all(kind.partition_local for kind in kinds)
    source = KafkaSource(config, LocalSchemaIds(), group, batch=89, whole_topic=whole_topic)
    project(views, kinds, source, follow=False)


ARRIVAL_ORDER_COLUMNS = {"holds_by_sku": ("oversold_since", "oversold_event")}
"""When a SKU went below zero depends on how orders on different partitions interleave: the
one thing a view keeps as it was processed (README: Views, OVERSOLD)."""


def contents(views: ViewStore, kinds: list[Any] | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Every view table's rows people read, in key order (working tables are the projectors' own)."""
    found = {}
    for kind in kinds or PROJECTORS.values():
        for table in kind.tables:
            if table.working:
                continue
            columns = [name for name in table.names if name not in ARRIVAL_ORDER_COLUMNS.get(table.name, ())]
            found[table.name] = views.query(
                f"SELECT {', '.join(columns)} FROM {table.name} ORDER BY {', '.join(table.key)}"
            )
    return found


def fresh_views(directory: Path, name: str) -> ViewStore:
    return open_views(parse_store_url(str(directory / f"{name}-{uuid.uuid4().hex[:8]}.views.db")))


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(1, 10_000), orders=st.integers(20, 120), cut=st.floats(0.2, 0.8))
def test_views_from_kafka_equal_views_from_the_log_incrementally_and_in_one_go(
    kafka_broker: str, tmp_path: Path, seed: int, orders: int, cut: float
) -> None:
    store = f"sqlite:///{tmp_path}/store-{uuid.uuid4().hex[:8]}.db"
    config = kafka_config(kafka_broker, store, tmp_path)
    lines = list(simulate(orders, seed))
    first, second = lines[: int(len(lines) * cut)], lines[int(len(lines) * cut) :]
    from_log, from_kafka, kafka_in_steps = (fresh_views(tmp_path, name) for name in ("log", "kafka", "steps"))
    try:
        publish(config, first)
        relay(config)
        fold_from_kafka(config, kafka_in_steps, "steps")  # part of the traffic, then the rest
        publish(config, second)
        relay(config)
        fold_from_kafka(config, kafka_in_steps, "steps")
        fold_from_kafka(config, from_kafka, "whole")
        fold_from_log(config, from_log)

        expected = contents(from_log)
        assert expected["order_status"], "the traffic made no view rows"
        assert contents(from_kafka) == expected
        assert contents(kafka_in_steps) == expected
    finally:
        for views in (from_log, from_kafka, kafka_in_steps):
            views.close()


def test_views_in_postgresql_from_kafka_equal_views_in_sqlite_from_the_log(
    kafka_broker: str, tmp_path: Path, postgres_url: str
) -> None:
    config = kafka_config(kafka_broker, f"sqlite:///{tmp_path}/store.db", tmp_path)
    publish(config, list(simulate(150, 7)))
    relay(config)
    in_sqlite, in_postgres = fresh_views(tmp_path, "log"), open_views(parse_store_url(postgres_url))
    try:
        fold_from_log(config, in_sqlite)
        fold_from_kafka(config, in_postgres, "pg")
        assert contents(in_postgres) == contents(in_sqlite)
    finally:
        in_sqlite.close()
        in_postgres.close()


def test_a_second_pass_over_the_topic_changes_nothing(kafka_broker: str, tmp_path: Path) -> None:
    """Redelivery: a new consumer group starts from offset 0, yet the tracked positions skip it all."""
    config = kafka_config(kafka_broker, f"sqlite:///{tmp_path}/store.db", tmp_path)
    publish(config, list(simulate(60, 3)))
    relay(config)
    views = fresh_views(tmp_path, "once")
    try:
        fold_from_kafka(config, views, "first")
        before = contents(views)
        fold_from_kafka(config, views, "second")
        assert contents(views) == before
    finally:
        views.close()


def test_order_views_scale_by_partition_two_processes_in_one_group_build_the_same_views(
    kafka_broker: str, tmp_path: Path
) -> None:
    """Status and cancellations rows belong to one order, hence one partition: two consumers
    sharing a group (and a view database) build exactly the views one process builds."""
    config = kafka_config(kafka_broker, f"sqlite:///{tmp_path}/store.db", tmp_path)
    publish(config, list(simulate(300, 11)))
    relay(config)
    kinds = [OrderStatus, Cancellations]
    assert all(kind.partition_local for kind in kinds) and not Holds.partition_local
    shared, alone = fresh_views(tmp_path, "shared"), fresh_views(tmp_path, "alone")
    try:
        second = open_views(shared.location)
        workers = [
            threading.Thread(target=fold_from_kafka, args=(config, views, "scaled", kinds))
            for views in (shared, second)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(180)
        assert not any(worker.is_alive() for worker in workers), "a member of the group is still folding"
        second.close()
        fold_from_kafka(config, shared, "scaled", kinds)  # whatever a rebalance left to the last one
        fold_from_log(config, alone)
        assert contents(shared, kinds) == contents(alone, kinds)
    finally:
        shared.close()
        alone.close()


def test_the_first_batch_after_partitions_change_hands_says_so(kafka_broker: str, tmp_path: Path) -> None:
    """What a runner keeps in memory about a partition's orders holds only while it holds the
    partition: the batch after an assignment tells it to read them from the views again."""
    config = kafka_config(kafka_broker, f"sqlite:///{tmp_path}/store.db", tmp_path)
    publish(config, list(simulate(40, 5)))
    relay(config)
    source = KafkaSource(config, LocalSchemaIds(), "hands", batch=25)
    read: dict[str, int] = {}
    flags = []
    for batch in source.batches(lambda name: read.get(name, 0), follow=False, should_stop=lambda: False):
        if batch.records:
            flags.append(batch.reassigned)
            read.update(batch.ends)
    assert len(flags) > 2 and flags[0] and not any(flags[1:])


def test_a_once_member_left_without_partitions_waits_for_the_rebalance_to_hand_some_back() -> None:
    """A rebalance revokes every partition before it hands them out again: a `--once` member
    that left at that moment could leave the topic unread by everyone in its group."""
    source = object.__new__(KafkaSource)  # the decision alone: no consumer needed
    source._partitions = Assignment("projector")
    began = time.monotonic()
    source._partitions.assigned([0, 1])
    source._partitions.revoked([0, 1])
    assert not source._drained(began)
    source._partitions.last_change -= REBALANCE_SECONDS + 1
    assert source._drained(began)
    source._partitions.assigned([1])
    assert not source._drained(began)  # held, not yet read to its end
