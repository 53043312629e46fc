"""Personal data: encrypted per customer, erased for good by destroying the customer's keys."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orderlog.audit.checkpoints import issue_checkpoint
from orderlog.audit.verification import verify_store
from orderlog.bootstrap import vault_for
from orderlog.config import Config
from orderlog.domain.customer import Customer
from orderlog.domain.order import Order
from orderlog.intake.outcomes import LineResult
from orderlog.presentation import order_view, record_view
from orderlog.privacy.erasure import ErasureError
from orderlog.privacy.master_key import MasterKeyError
from orderlog.privacy.vault import ENCRYPTED, ERASED
from orderlog.sources.signing import public_pem
from tests import builders as b
from tests.conftest import reopen
from tests.integration.test_store import _raw_store_bytes

Publish = Callable[..., list[LineResult]]
SECRET = {
    **b.ADDRESS,
    "name": "Shangguan Wan'er",
    "phone": "+86 139 1234 5678",
    "line1": "9 Hidden Alley",
    "postal_code": "200040",
}
OTHER = {**b.ADDRESS, "name": "Murong Fu", "phone": "13700001111"}
PERSONAL = ("name", "phone", "line1", "postal_code")
KEY = Ed25519PrivateKey.generate()


def wrapped_keys(config: Config, customer: str) -> list[bytes]:
    app = reopen(config)
    with app.database.transaction(commit=False) as cursor:
        rows = cursor.execute(
            app.database.sql("SELECT wrapped FROM {customer_keys} WHERE customer_id = ?"), (customer,)
        ).fetchall()
    app.close()
    return [bytes(row[0]) for row in rows]


@pytest.fixture
def two_customers(publish: Publish) -> None:
    results = publish(
        b.submitted("SO-1", customer_id="C-1", address=SECRET),
        b.paid("SO-1"),
        b.submitted("SO-2", customer_id="C-2", address=OTHER),
        b.address_corrected("SO-1", address={**SECRET, "line1": "10 Hidden Alley"}),
    )
    assert [r.outcome for r in results] == ["accepted"] * 4


@pytest.mark.usefixtures("two_customers")
def test_forgetting_a_customer_erases_their_personal_data_and_nothing_else(config: Config) -> None:
    app = reopen(config)
    checkpoint = issue_checkpoint(app, KEY)
    keys_before = wrapped_keys(config, "C-1")
    assert len(keys_before) == 1
    assert app.forget_customer("C-1", by="dpo@example.com", reason="erasure request 42") == 1

    after = reopen(config)
    fresh_vault = after.vault  # holds the master key
    first = after.stream(Order, "SO-1")
    assert first is not None
    view = order_view(first, fresh_vault)
    assert {part: view["shipping_address"][part] for part in PERSONAL} == dict.fromkeys(PERSONAL, ERASED)
    assert (view["shipping_address"]["city"], view["paid_amount"], view["status"]) == (
        "Shanghai",
        1000,
        "PENDING_SHIPMENT",
    )
    records = [record_view(e, fresh_vault) for e in after.records(Order, "SO-1")]
    assert records[0]["data"]["shipping_address"]["name"] == ERASED
    assert records[2]["data"]["shipping_address"]["line1"] == ERASED
    assert records[0]["data"]["shipping_address"]["valid"] is True  # decided on write, kept as a flag

    second = after.stream(Order, "SO-2")
    assert second is not None
    assert order_view(second, fresh_vault)["shipping_address"]["phone"] == OTHER["phone"]

    result = verify_store(after, [("before erasure", checkpoint)], public_pem(KEY).decode())
    assert result.ok, result.headline()

    erased = after.stream(Customer, "C-1")
    assert erased is not None
    (erasure,) = after.records(Customer, "C-1")
    assert (erasure.type, erasure.actor, erasure.data) == (
        "CustomerErased",
        "dpo@example.com",
        {"reason": "erasure request 42", "keys_destroyed": 1},
    )

    raw = _raw_store_bytes(after, config)
    for key in keys_before:
        assert key not in raw and base64.b64encode(key) not in raw
    for plaintext in ("Shangguan", "9 Hidden Alley", "1234 5678"):
        assert plaintext.encode() not in raw


@pytest.mark.usefixtures("two_customers")
def test_forgetting_twice_or_a_stranger_is_refused_with_a_reason(config: Config) -> None:
    app = reopen(config)
    app.forget_customer("C-1", by="dpo", reason="request")
    with pytest.raises(ErasureError, match=r"already erased at .* by dpo"):
        app.forget_customer("C-1", by="dpo", reason="again")
    with pytest.raises(ErasureError, match="customer C-9 is not known"):
        app.forget_customer("C-9", by="dpo", reason="request")


@pytest.mark.usefixtures("two_customers")
def test_a_returning_customer_gets_a_new_key_and_old_orders_stay_erased(config: Config, publish: Publish) -> None:
    app = reopen(config)
    app.forget_customer("C-1", by="dpo", reason="request")
    publish(b.submitted("SO-3", customer_id="C-1", address=SECRET))
    after = reopen(config)
    vault = after.vault
    views = {key: order_view(after.stream(Order, key), vault) for key in ("SO-1", "SO-3")}  # type: ignore[arg-type]
    assert views["SO-1"]["shipping_address"]["name"] == ERASED
    assert views["SO-3"]["shipping_address"]["name"] == SECRET["name"]


@pytest.mark.usefixtures("two_customers")
def test_without_the_master_key_the_tool_runs_and_shows_encrypted(config: Config, tmp_path) -> None:  # type: ignore[no-untyped-def]
    keyless = replace(config, master_key_file=tmp_path / "elsewhere.key")
    app = reopen(keyless)
    view = order_view(app.stream(Order, "SO-1"), app.vault)  # type: ignore[arg-type]
    assert view["shipping_address"]["phone"] == ENCRYPTED and view["paid_amount"] == 1000
    with pytest.raises(MasterKeyError, match="not configured"):
        vault_for(app, keyless, creating_keys=True)


@pytest.mark.usefixtures("two_customers")
def test_a_wrong_master_key_is_refused_not_used(config: Config) -> None:
    from orderlog.privacy.master_key import new_master_key

    wrong = replace(config, master_key=new_master_key())
    with pytest.raises(MasterKeyError, match="is not the one this store's data was encrypted with"):
        reopen(wrong)


@pytest.mark.usefixtures("two_customers")
def test_an_erasure_interrupted_before_the_keys_were_destroyed_is_finished_by_running_it_again(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = reopen(config)
    vault = app.vault

    def crash(_customer_id: str) -> int:
        raise KeyboardInterrupt  # the process dies after recording the erasure, before destroying keys

    with monkeypatch.context() as patched:
        patched.setattr(vault, "destroy_customer_keys", crash)
        with pytest.raises(KeyboardInterrupt):
            app.forget_customer("C-1", by="dpo", reason="request")
    assert len(wrapped_keys(config, "C-1")) == 1
    assert app.forget_customer("C-1", by="dpo", reason="request, again") == 1
    assert wrapped_keys(config, "C-1") == []
    assert [e.data["reason"] for e in reopen(config).records(Customer, "C-1")] == ["request", "request, again"]


@pytest.mark.usefixtures("two_customers")
def test_the_vault_that_performed_an_erasure_cannot_open_the_erased_data_either(config: Config) -> None:
    app = reopen(config)
    vault = app.vault
    sealed = app.records(Order, "SO-1")[0].data["shipping_address"]["encrypted"]
    assert "Shangguan" in vault.open_text(sealed)  # it has read the key, and holds it
    app.forget_customer("C-1", by="dpo", reason="request 43")
    assert vault.open_text(sealed) == ERASED
    app.close()
