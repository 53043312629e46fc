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

from orderlog.application import OrderLog, open_store
from orderlog.config import Config
from orderlog.publishing import LineResult, Publisher, open_publisher
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


@pytest.fixture
def publisher(config: Config) -> Iterator[tuple[OrderLog, Publisher]]:
    app, publisher = open_publisher(config, announce=lambda _message: None, batch_lines=100)
    yield app, publisher
    app.close()


@pytest.fixture
def publish(publisher: tuple[OrderLog, Publisher]) -> Callable[..., list[LineResult]]:
    """publish(envelope, ...) -> one LineResult per envelope (raw strings pass as they are)."""
    _app, pub = publisher

    def run(*items: dict[str, Any] | str) -> list[LineResult]:
        texts = [item if isinstance(item, str) else line(item) for item in items]
        return [result for batch in pub.publish(enumerate(texts, start=1)) for result in batch]

    return run


def reopen(config: Config) -> OrderLog:
    return open_store(config.location, create=False)
