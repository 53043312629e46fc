"""Configuration: environment variables, overridden by command-line options, in one place.

| variable                     | option                 | meaning                                      |
|------------------------------|------------------------|----------------------------------------------|
| ORDERLOG_STORE               | --store URL            | sqlite:///orderlog.db (default), postgresql://... |
| ORDERLOG_MASTER_KEY          |                        | base64 master key wrapping customer data keys |
| ORDERLOG_MASTER_KEY_FILE     |                        | file holding it (default: beside the store)   |
| ORDERLOG_SIGNING_KEY         | --signing-key FILE     | Ed25519 PEM key that signs checkpoints        |
| ORDERLOG_REQUIRE_SIGNATURES  | --require-signatures   | 1: reject unsigned upstream events            |
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from orderlog.application import OrderLog, open_store
from orderlog.privacy.master_key import (
    CHECK_NAME,
    MasterKeyError,
    check_value,
    create_key_file,
    default_key_file,
    find_master_key,
)
from orderlog.privacy.vault import Vault
from orderlog.store.location import DEFAULT_STORE, StoreLocation, parse_store_url

TRUE_WORDS = {"1", "true", "yes", "y", "on"}


@dataclass(frozen=True)
class Config:
    store_url: str = DEFAULT_STORE
    master_key: str | None = None
    master_key_file: Path | None = None
    signing_key: Path | None = None
    require_signatures: bool = False

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
            require_signatures=env.get("ORDERLOG_REQUIRE_SIGNATURES", "").strip().lower() in TRUE_WORDS,
        )

    @property
    def location(self) -> StoreLocation:
        return parse_store_url(self.store_url)

    def key_file(self) -> Path:
        return self.master_key_file or default_key_file(self.location)

    def open(self, *, create: bool = False) -> OrderLog:
        return open_store(self.location, create=create)

    def vault(self, app: OrderLog, *, writing: bool, announce: Callable[[str], None]) -> Vault:
        """The store's vault. Writing with no key anywhere yet creates the key file."""
        key_file = self.key_file()
        origin = " (ORDERLOG_MASTER_KEY)" if self.master_key else f" {key_file}"
        key = find_master_key(self.master_key, key_file)
        stored_check = app.database.get_meta(CHECK_NAME)
        if key is None:
            if not writing:
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
        if (stored_check or app.database.set_meta_once(CHECK_NAME, check)) != check:
            raise MasterKeyError(f"the master key{origin} is not the one this store's data was encrypted with")
        return Vault(app.database, key, origin)
