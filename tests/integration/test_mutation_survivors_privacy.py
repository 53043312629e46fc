"""What `make mutation` found untested in orderlog.privacy: one test per surviving class.

The mutants that cannot change behaviour are listed, with why, in the README's "Mutation
testing" paragraph.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from orderlog.config import Config
from orderlog.intake.outcomes import LineResult
from orderlog.privacy.erasure import ErasureError
from orderlog.privacy.master_key import MasterKeyError, default_key_file
from orderlog.privacy.vault import Vault
from orderlog.store.location import StoreLocation
from tests import builders as b
from tests.conftest import reopen

Publish = Callable[..., list[LineResult]]


def test_the_master_key_file_sits_beside_a_sqlite_store_and_in_the_working_directory_otherwise() -> None:
    beside = StoreLocation("sqlite:///data/shop.db", "sqlite", Path("/data/shop.db"))
    assert default_key_file(beside) == Path("/data/shop.db.master-key")
    assert default_key_file(StoreLocation("sqlite://", "sqlite", None)) == Path("orderlog.master-key")
    postgres = StoreLocation("postgresql://u@h/d", "postgres", Path("/data/shop.db"))
    assert default_key_file(postgres) == Path("orderlog.master-key")


def test_forgetting_a_customer_twice_says_when_and_by_whom_and_that_nothing_is_left(
    config: Config, publish: Publish
) -> None:
    publish(b.submitted("SO-1", customer_id="C-1"))
    app = reopen(config)
    app.forget_customer("C-1", by="dpo", reason="request")
    with pytest.raises(
        ErasureError, match=r"^customer C-1 was already erased at \S+Z by dpo; nothing of theirs is left to destroy$"
    ):
        app.forget_customer("C-1", by="dpo", reason="again")
    app.close()


def test_the_vault_that_erased_a_customer_seals_their_new_data_under_a_new_key(
    config: Config, publish: Publish
) -> None:
    publish(b.submitted("SO-1", customer_id="C-1"))
    app = reopen(config)
    vault = app.vault
    before = vault.seal_text("C-1", "before")
    assert vault.open_text(before) == "before"
    assert vault.destroy_customer_keys("C-1") == 1
    after = vault.seal_text("C-1", "after")
    assert after.split(":")[1] != before.split(":")[1]
    assert vault.open_text(after) == "after"
    assert vault.customer_key_count("C-1") == 1
    app.close()


def test_a_data_key_under_another_master_key_is_named(config: Config, publish: Publish) -> None:
    publish(b.submitted("SO-1", customer_id="C-1"))
    app = reopen(config)
    sealed = app.vault.seal_text("C-1", "text")
    key_id = sealed.split(":")[1]
    stranger = Vault(app.database, secrets.token_bytes(32))
    with pytest.raises(MasterKeyError, match=rf"^data key {key_id} does not open with this master key$"):
        stranger.open_text(sealed)
    app.close()
