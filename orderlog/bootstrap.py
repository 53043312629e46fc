"""Wiring: from settings to a working service (store, vault, source gate), in one place.

orderlog.config holds values; this module opens and connects them. Every entry point (the
command line, the workers, the Kafka processes, the tests) gets its OrderLog from here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from eventsourcing.persistence import InfrastructureFactoryError, PersistenceError

from orderlog.application import OrderLog
from orderlog.config import Config
from orderlog.privacy.master_key import CHECK_NAME, MasterKeyError, check_value, create_key_file, find_master_key
from orderlog.privacy.vault import Vault
from orderlog.store.location import StoreError, StoreLocation
from orderlog.store.opening import check_location, check_sqlite_store, creation_lock, store_problem

Announce = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


def open_orderlog(
    config: Config, *, writing: bool = False, create: bool = False, announce: Announce = _quiet
) -> OrderLog:
    """The service on the configured store. Readers open it read-only and run no DDL;
    `create` makes the store (and, on first need, the master key file) if missing."""
    app = open_store(config.location, create=create, writing=writing, pool=config.postgres_pool)
    try:
        app.vault = vault_for(app, config, creating_keys=create, announce=announce)
        app.require_signatures = config.require_signatures
    except BaseException:
        app.close()
        raise
    return app


def open_store(
    location: StoreLocation, *, create: bool = False, writing: bool | None = None, pool: tuple[int, int] = (2, 4)
) -> OrderLog:
    """The service on the store at `location` (no master key: personal data shows as
    [encrypted]), or StoreError saying why not. Several processes may create one store at
    the same moment, one at a time."""
    writing = create if writing is None else writing or create
    check_location(location, create=create)
    with creation_lock(location, shared=not create):
        check_sqlite_store(location, create=create)
        try:
            app = OrderLog(location, writing=writing, pool=pool)
        except (PersistenceError, InfrastructureFactoryError, OSError, sqlite3.Error) as error:
            raise StoreError(f"cannot open store {location.label}: {store_problem(error)}") from None
    try:
        app.database.check_readable()
    except (PersistenceError, sqlite3.Error) as error:
        app.close()
        raise StoreError(f"cannot read store {location.label}: {store_problem(error)}") from None
    return app


def vault_for(app: OrderLog, config: Config, *, creating_keys: bool, announce: Announce = _quiet) -> Vault:
    """The store's vault. With `creating_keys` and no key anywhere yet, the key file is made
    (and announced once); a key that is not this store's is refused, never used."""
    key_file = config.key_file()
    origin = " (ORDERLOG_MASTER_KEY)" if config.master_key else f" {key_file}"
    key = find_master_key(config.master_key, key_file)
    stored_check = app.database.get_meta(CHECK_NAME)
    if key is None:
        if not creating_keys:
            return Vault(app.database, None, origin)
        if stored_check is not None:
            raise MasterKeyError(
                f"this store's personal data is encrypted under a master key that is not configured: "
                f"set ORDERLOG_MASTER_KEY or restore the key file {key_file}"
            )
        key = create_key_file(key_file)
        announce(
            f"created master key file {key_file} (mode 600): it unlocks all personal data in "
            f"{app.location.label}; back it up, and keep it apart from the store's backups"
        )
    check = check_value(key)
    if stored_check is None and creating_keys:
        stored_check = app.database.set_meta_once(CHECK_NAME, check)
    if stored_check is not None and stored_check != check:
        raise MasterKeyError(f"the master key{origin} is not the one this store's data was encrypted with")
    return Vault(app.database, key, origin)
