"""Store URLs: `sqlite:///path`, a plain file path, or `postgresql://user@host:port/db?schema=s`.

The eventsourcing library chooses persistence from environment variables; this module
is the one place that turns orderlog's `--store` / `ORDERLOG_STORE` into them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

DEFAULT_STORE = "sqlite:///orderlog.db"
SQLITE_LOCK_TIMEOUT_SECONDS = 30
IDENTIFIER_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")


class StoreError(Exception):
    """The store cannot be used as asked: bad URL, missing file, server not answering."""


@dataclass(frozen=True)
class StoreLocation:
    url: str
    kind: str  # "sqlite" or "postgres"
    path: Path | None = None
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = ""
    dbname: str = ""
    schema: str = "public"

    @property
    def label(self) -> str:
        if self.kind == "sqlite":
            return str(self.path)
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname} (schema {self.schema})"

    def exists(self) -> bool:
        return self.kind != "sqlite" or (self.path is not None and self.path.exists())

    def connect(self, **options: Any) -> Any:
        """A psycopg connection to this PostgreSQL store's database (for set-up and tests)."""
        import psycopg

        return psycopg.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname=self.dbname, **options
        )

    def sqlite_uri(self, *, writing: bool) -> str:
        """The SQLite URI to open this store with.

        Readers are kept from writing by `PRAGMA query_only` on their connections (see
        READ_ONLY_SETTINGS), not by `mode=ro`: a `mode=ro` connection cannot remove the
        write-ahead log it makes beside the store, so every read would leave one. A store in
        a directory this process cannot write to (a backup on read-only media, another
        user's store) and with no write-ahead log beside it (so no writer has it open) is
        opened immutable, since SQLite could not create the files a WAL reader needs.
        """
        assert self.path is not None
        uri = f"file:{quote(str(self.path.absolute()))}"
        wal = self.path.with_name(self.path.name + "-wal")
        if not writing and not os.access(self.path.absolute().parent, os.W_OK) and not wal.exists():
            return f"{uri}?mode=ro&immutable=1"
        return uri

    def library_env(self, *, writing: bool = True, pool: tuple[int, int] = (2, 4)) -> dict[str, str]:
        """The eventsourcing library's settings for this store: readers create nothing.
        `pool` is the PostgreSQL connection pool's (size, overflow)."""
        create = {"CREATE_TABLE": "y" if writing else "n"}
        if self.kind == "sqlite":
            return {
                "PERSISTENCE_MODULE": "orderlog.store.sqlite_persistence:OrderlogSQLiteFactory",
                "SQLITE_DBNAME": self.sqlite_uri(writing=writing),
                "SQLITE_QUERY_ONLY": "n" if writing else "y",
                "SQLITE_LOCK_TIMEOUT": str(SQLITE_LOCK_TIMEOUT_SECONDS),
                **create,
            }
        return {
            **create,
            "PERSISTENCE_MODULE": "orderlog.store.positions:OrderlogPostgresFactory",
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_SCHEMA": self.schema,
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "POSTGRES_LOCK_TIMEOUT": "30",
            "POSTGRES_POOL_SIZE": str(pool[0]),
            "POSTGRES_MAX_OVERFLOW": str(pool[1]),
        }


def parse_store_url(url: str) -> StoreLocation:
    """Reads a store URL; raises StoreError with the fix when it cannot."""
    text = url.strip()
    if not text:
        raise StoreError("empty store URL: use sqlite:///orderlog.db or postgresql://user@host/db")
    if "://" not in text:
        return StoreLocation(url=text, kind="sqlite", path=Path(text))
    parts = urlsplit(text)
    if parts.scheme == "sqlite":
        path = unquote(parts.path)
        if parts.netloc or not path.startswith("/") or path == "/":
            raise StoreError(
                f"bad SQLite store URL {url!r}: use sqlite:///relative/path.db or sqlite:////absolute/path.db"
            )
        return StoreLocation(url=text, kind="sqlite", path=Path(path[1:]))
    if parts.scheme in ("postgresql", "postgres"):
        return _postgres_location(text, parts)
    raise StoreError(f"unknown store URL scheme {parts.scheme!r} in {url!r}: use sqlite:/// or postgresql://")


def _postgres_location(text: str, parts) -> StoreLocation:  # type: ignore[no-untyped-def]
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname:
        raise StoreError(f"PostgreSQL store URL {text!r} names no database: postgresql://user@host:5432/DBNAME")
    schema = parse_qs(parts.query).get("schema", ["public"])[0]
    if not schema or not set(schema) <= IDENTIFIER_CHARS or schema[0].isdigit():
        raise StoreError(f"schema {schema!r} in {text!r}: use lower-case letters, digits and _")
    try:
        port = parts.port or 5432
    except ValueError:
        raise StoreError(f"bad port in PostgreSQL store URL {text!r}") from None
    return StoreLocation(
        url=text,
        kind="postgres",
        host=parts.hostname or "127.0.0.1",
        port=port,
        user=unquote(parts.username or os.environ.get("USER", "postgres")),
        password=unquote(parts.password or ""),
        dbname=dbname,
        schema=schema,
    )
