"""Settings: environment variables, overridden by command-line options, in one place.

Only values live here; what they open and connect is orderlog.bootstrap's job.

| variable                       | option                 | meaning                                          |
|--------------------------------|------------------------|--------------------------------------------------|
| ORDERLOG_STORE                 | --store URL            | sqlite:///orderlog.db (default), postgresql://... |
| ORDERLOG_MASTER_KEY            |                        | base64 master key wrapping customer data keys     |
| ORDERLOG_MASTER_KEY_FILE       |                        | file holding it (default: beside the store)       |
| ORDERLOG_SIGNING_KEY           | --signing-key FILE     | Ed25519 PEM key that signs checkpoints            |
| ORDERLOG_REQUIRE_SIGNATURES    | --require-signatures   | 1: reject unsigned upstream events                |
| ORDERLOG_POSTGRES_POOL_SIZE    |                        | PostgreSQL connections kept open (default 2)      |
| ORDERLOG_POSTGRES_MAX_OVERFLOW |                        | more connections allowed under load (default 4)   |
| ORDERLOG_VIEWS                 | --views URL            | the read models' database (default: beside store) |
| ORDERLOG_KAFKA                 | --kafka HOST:PORT,...  | Kafka bootstrap servers (none: embedded mode)     |
| ORDERLOG_SCHEMA_REGISTRY       | --schema-registry URL  | a Confluent-compatible registry (default: local)  |
| ORDERLOG_TOPIC_PREFIX          |                        | topic names' prefix (default `orderlog.`)         |
| ORDERLOG_KAFKA_CONSUMER_OPTIONS|                        | extra consumer settings, `name=value;...`         |
| ORDERLOG_DEBUG                 |                        | 1: tracebacks of defects, on stderr               |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from orderlog.domain.text import is_whole_number
from orderlog.privacy.master_key import default_key_file
from orderlog.store.location import DEFAULT_STORE, StoreError, StoreLocation, parse_store_url
from orderlog.store.opening import SQLITE_SIDE_FILES

TRUE_WORDS = {"1", "true", "yes", "y", "on"}


@dataclass(frozen=True)
class Config:
    store_url: str = DEFAULT_STORE
    master_key: str | None = None
    master_key_file: Path | None = None
    signing_key: Path | None = None
    require_signatures: bool = False
    postgres_pool: tuple[int, int] = (2, 4)
    """The PostgreSQL connection pool: (connections kept, more allowed under load)."""
    views_url: str | None = None
    """Where the read models live; None: `<store>.views.db` beside a SQLite store, or the
    PostgreSQL store's own database and schema."""
    kafka: str | None = None
    """Kafka bootstrap servers; None is the embedded mode (the store's log, no topics)."""
    schema_registry: str | None = None
    """A Confluent-compatible schema registry's URL; None: ids from schemas/ (local)."""
    topic_prefix: str = "orderlog."
    kafka_consumer_options: dict[str, str] = field(default_factory=dict)
    """Extra librdkafka consumer settings (`session.timeout.ms=1000;...`), e.g. for tests."""
    debug: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        key_file = env.get("ORDERLOG_MASTER_KEY_FILE")
        signing_key = env.get("ORDERLOG_SIGNING_KEY")
        return cls(
            store_url=env.get("ORDERLOG_STORE") or DEFAULT_STORE,
            master_key=env.get("ORDERLOG_MASTER_KEY") or None,
            master_key_file=Path(key_file) if key_file else None,
            signing_key=Path(signing_key) if signing_key else None,
            require_signatures=_flag(env, "ORDERLOG_REQUIRE_SIGNATURES"),
            postgres_pool=(
                _count(env, "ORDERLOG_POSTGRES_POOL_SIZE", 2),
                _count(env, "ORDERLOG_POSTGRES_MAX_OVERFLOW", 4),
            ),
            views_url=env.get("ORDERLOG_VIEWS") or None,
            kafka=env.get("ORDERLOG_KAFKA") or None,
            schema_registry=env.get("ORDERLOG_SCHEMA_REGISTRY") or None,
            topic_prefix=env.get("ORDERLOG_TOPIC_PREFIX", "orderlog."),
            kafka_consumer_options=_options(env.get("ORDERLOG_KAFKA_CONSUMER_OPTIONS", "")),
            debug=debug_requested(env),
        )

    @property
    def location(self) -> StoreLocation:
        return parse_store_url(self.store_url)

    @property
    def views_location(self) -> StoreLocation:
        if self.views_url:
            return parse_store_url(self.views_url)
        store = self.location
        if store.kind == "postgres" or store.path is None:
            return store
        return replace(store, url="", path=store.path.with_name(f"{store.path.stem}.views.db"))

    def topic(self, name: str) -> str:
        """A topic's full name: `inbound` -> `orderlog.inbound`."""
        return f"{self.topic_prefix}{name}"

    def key_file(self) -> Path:
        return self.master_key_file or default_key_file(self.location)

    def files(self) -> list[tuple[Path, str]]:
        """The files this configuration reads or keeps, each with what it is: the SQLite store
        and views with SQLite's side files, and the keys. No output may be written over them."""
        found: list[tuple[Path, str]] = []
        for location, what in ((self.location, "the store"), (self.views_location, "the views database")):
            if location.kind == "sqlite" and location.path is not None:
                found.append((location.path, what))
                found += [
                    (location.path.with_name(location.path.name + side), f"{what}'s {side} file")
                    for side in SQLITE_SIDE_FILES
                ]
        keys = (self.key_file(), default_key_file(self.location), self.signing_key)
        return found + [(path, "a key file") for path in keys if path is not None]


def _options(text: str) -> dict[str, str]:
    options = {}
    for part in filter(None, (piece.strip() for piece in text.split(";"))):
        name, equals, value = part.partition("=")
        if not equals or not name.strip():
            raise StoreError(f"ORDERLOG_KAFKA_CONSUMER_OPTIONS: {part!r} is not NAME=VALUE")
        options[name.strip()] = value.strip()
    return options


def debug_requested(env: Mapping[str, str]) -> bool:
    """ORDERLOG_DEBUG: read first of all, so that even a bad setting shows its traceback."""
    return _flag(env, "ORDERLOG_DEBUG")


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in TRUE_WORDS


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    if not is_whole_number(text) or int(text) > 1000:
        raise StoreError(f"{name}={text!r}: expected a whole number of connections (0-1000)")
    return int(text)
