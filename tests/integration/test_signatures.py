"""Signed upstream sources: every rule, accepted and rejected, and what an auditor can prove."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orderlog.application import OrderLog
from orderlog.audit.checkpoints import issue_checkpoint
from orderlog.audit.proofs import order_proof
from orderlog.audit_verify import envelope_payload, verify_proof
from orderlog.bootstrap import open_orderlog
from orderlog.config import Config
from orderlog.domain.order import Order
from orderlog.intake.outcomes import LineResult
from orderlog.presentation import record_view
from orderlog.privacy.vault import ERASED
from orderlog.sources.registry import SourceError, SourceRequest, list_sources, register_source, revoke_source
from orderlog.sources.signing import public_pem, sign_envelope
from tests import builders as b
from tests.conftest import open_intake, reopen
from tests.integration.test_store import _raw_store_bytes

PAYMENTS = Ed25519PrivateKey.generate()
SHOP = Ed25519PrivateKey.generate()
STRANGER = Ed25519PrivateKey.generate()


@pytest.fixture
def registered(config: Config) -> Iterator[OrderLog]:
    app = open_orderlog(config, create=True)
    register_source(
        app, SourceRequest("payment-gateway", ["PaymentCaptured", "RefundIssued"], public_pem(PAYMENTS).decode()), "ops"
    )
    register_source(app, SourceRequest("shop", ["OrderSubmitted", "OrderCancelled"], public_pem(SHOP).decode()), "ops")
    yield app
    app.close()


def publish_with(config: Config, *envelopes: dict[str, Any] | str) -> list[LineResult]:
    app, publisher = open_intake(config)
    try:
        texts = [e if isinstance(e, str) else json.dumps(e) for e in envelopes]
        return [r for batch in publisher.take(enumerate(texts, 1)) for r in batch]
    finally:
        app.close()


def order_submitted() -> dict[str, Any]:
    return sign_envelope(SHOP, b.submitted(source="shop", customer_id="C-7"))


def payment(key: Ed25519PrivateKey = PAYMENTS, **fields: Any) -> dict[str, Any]:
    return sign_envelope(key, b.paid(source=fields.pop("source", "payment-gateway"), **fields))


Check = Callable[[list[LineResult]], None]


@pytest.mark.usefixtures("registered")
def test_a_signed_event_is_accepted_and_its_signature_kept(config: Config) -> None:
    signed = payment()
    assert [r.outcome for r in publish_with(config, order_submitted(), signed)] == ["accepted", "accepted"]
    app = reopen(config)
    record = app.records(Order, "SO-1")[1].as_dict()
    assert record["signature"] == signed["signature"]
    assert record["signed_envelope"] == envelope_payload(signed).decode()  # what the source signed, verbatim


@pytest.mark.usefixtures("registered")
def test_a_redelivered_signed_event_stays_a_duplicate(config: Config) -> None:
    signed = payment()
    publish_with(config, order_submitted(), signed)
    assert [r.outcome for r in publish_with(config, signed)] == ["duplicate"]


@pytest.mark.parametrize("require", [False, True], ids=["signatures optional", "signatures required"])
@pytest.mark.parametrize(
    ("envelope", "reason"),
    [
        (lambda: {**payment(), "data": {**payment()["data"], "amount": 999_999}}, "bad signature"),
        (lambda: payment(STRANGER), "bad signature"),
        (lambda: payment(STRANGER, source="rogue-gateway"), "unknown source 'rogue-gateway'"),
        (
            lambda: sign_envelope(PAYMENTS, b.cancelled(source="payment-gateway")),
            "source 'payment-gateway' may not publish OrderCancelled",
        ),
    ],
    ids=["altered after signing", "signed with another key", "unknown source", "type not allowed"],
)
@pytest.mark.usefixtures("registered")
def test_a_signed_event_breaking_a_rule_is_rejected_whether_or_not_signatures_are_required(
    config: Config, envelope: Callable[[], dict[str, Any]], reason: str, require: bool
) -> None:
    publish_with(config, order_submitted())
    (result,) = publish_with(replace(config, require_signatures=require), envelope())
    assert result.outcome == "invalid" and reason in result.reason
    assert [e.type for e in reopen(config).records(Order, "SO-1")] == ["OrderSubmitted"]  # never applied


@pytest.mark.usefixtures("registered")
def test_unsigned_events_pass_unless_signatures_are_required(config: Config) -> None:
    assert publish_with(config, b.submitted(source="shop"))[0].outcome == "accepted"
    (result,) = publish_with(replace(config, require_signatures=True), b.paid(source="payment-gateway"))
    assert result.outcome == "invalid"
    assert result.reason == "unsigned: signatures are required (ORDERLOG_REQUIRE_SIGNATURES)"


def test_a_revoked_source_is_rejected_and_its_old_key_kept(config: Config, registered: OrderLog) -> None:
    publish_with(config, order_submitted(), payment())
    key = revoke_source(registered, "payment-gateway", "key leaked", "ops")
    (result,) = publish_with(config, payment(payment_id="P-2"))
    assert (result.outcome, result.reason) == ("invalid", "source 'payment-gateway' is revoked")
    (source,) = [s for s in list_sources(reopen(config)) if s.name == "payment-gateway"]
    assert source.keys[0].key_id == key.key_id and source.keys[0].revoked_at is not None


def test_registry_mistakes_are_refused(registered: OrderLog) -> None:
    with pytest.raises(SourceError, match="already registered with key"):
        register_source(registered, SourceRequest("shop", ["OrderSubmitted"], public_pem(STRANGER).decode()), "ops")
    key, new = register_source(registered, SourceRequest("shop", ["OrderSubmitted"], public_pem(SHOP).decode()), "ops")
    assert not new and key.types == ("OrderCancelled", "OrderSubmitted")  # the same key again changes nothing
    with pytest.raises(SourceError, match="unknown event type"):
        register_source(registered, SourceRequest("erp", ["OrderShipped"], public_pem(SHOP).decode()), "ops")
    with pytest.raises(SourceError, match="no active key"):
        revoke_source(registered, "nobody", "", "ops")


@pytest.mark.usefixtures("registered")
def test_a_signed_envelope_with_personal_data_is_kept_encrypted_and_erasable(config: Config) -> None:
    secret = {**b.ADDRESS, "phone": "13866667777"}
    signed = sign_envelope(SHOP, b.submitted(source="shop", customer_id="C-7", address=secret))
    assert publish_with(config, signed)[0].outcome == "accepted"
    app = reopen(config)
    assert b"13866667777" not in _raw_store_bytes(app, config)
    vault = app.vault
    shown = record_view(app.records(Order, "SO-1")[0], vault)
    assert json.loads(shown["signed_envelope"])["data"]["shipping_address"]["phone"] == "13866667777"
    app.forget_customer("C-7", by="dpo", reason="request")
    after = reopen(config)
    erased = record_view(after.records(Order, "SO-1")[0], after.vault)
    assert erased["signed_envelope"] == ERASED


@pytest.mark.usefixtures("registered")
def test_an_auditor_can_prove_which_source_asserted_a_fact(config: Config) -> None:
    publish_with(config, order_submitted(), payment())
    app = reopen(config)
    log_key = Ed25519PrivateKey.generate()
    checkpoint = issue_checkpoint(app, log_key)
    proof = order_proof(app, "SO-1", checkpoint, public_pem(log_key).decode())
    problems, notes = verify_proof(proof, checkpoint)
    assert problems == []
    assert any("signed by source 'payment-gateway'" in note for note in notes)
    assert any("cannot be checked here" in note for note in notes)  # the submission's envelope is encrypted
    forged = json.loads(json.dumps(proof))
    forged["sources"]["payment-gateway"] = [public_pem(STRANGER).decode()]
    problems, _ = verify_proof(forged, checkpoint)
    assert any("signature does not verify" in p for p in problems)


def test_sign_command_and_signed_simulated_traffic(tmp_path: Path) -> None:
    from tests.e2e.test_cli import orderlog

    keys = tmp_path / "keys"
    made = orderlog(
        "simulate", "--orders", "60", "--seed", "4", "--sign-with", str(keys), "--out", "signed.jsonl", cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    added = orderlog("sources", "add", "--from", str(keys / "sources.json"), "--by", "ops-lead", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert added.stdout.count("may publish") == len(json.loads((keys / "sources.json").read_text()))
    again = orderlog("sources", "add", "--from", str(keys / "sources.json"), cwd=tmp_path)
    assert again.returncode == 0 and "already registered, with this key" in again.stdout
    rows = json.loads(orderlog("sources", "list", "--json", cwd=tmp_path).stdout)
    assert {row["registered_by"] for row in rows} == {"ops-lead"} and all(row["registered_at"] for row in rows)
    listed = orderlog("sources", "list", cwd=tmp_path).stdout
    assert "payment-gateway" in listed and "PaymentCaptured" in listed
    result = orderlog("publish", "signed.jsonl", "--require-signatures", "--rejects", "rejects.jsonl", cwd=tmp_path)
    rejects = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert all("signature" not in r["reason"] and "source" not in r["reason"] for r in rejects), rejects[:3]
    assert "accepted" in result.stdout and int(result.stdout.split()[1].rstrip(",")) > 200

    envelope = tmp_path / "one.jsonl"
    envelope.write_text(b.line(b.paid(source="payment-gateway", order_id="SO-4-000001", event_id="late-1")) + "\n")
    signed = orderlog("sign", "--key", str(keys / "payment-gateway.pem"), str(envelope), cwd=tmp_path)
    assert signed.returncode == 0 and json.loads(signed.stdout)["signature"]
    (tmp_path / "signed-one.jsonl").write_text(signed.stdout)
    again = orderlog("publish", "signed-one.jsonl", "--require-signatures", cwd=tmp_path)
    assert again.stdout.strip().startswith("accepted 1,"), again.stdout + again.stderr


def test_a_long_running_publisher_sees_a_revocation_made_elsewhere(config: Config, registered: OrderLog) -> None:
    app, publisher = open_intake(config)
    first = [
        r for batch in publisher.take(enumerate([json.dumps(order_submitted()), json.dumps(payment())])) for r in batch
    ]
    assert [r.outcome for r in first] == ["accepted", "accepted"]
    revoke_source(registered, "payment-gateway", "key leaked", "ops")  # another process, in effect
    (later,) = [r for batch in publisher.take([(3, json.dumps(payment(payment_id="P-2")))]) for r in batch]
    app.close()
    assert (later.outcome, later.reason) == ("invalid", "source 'payment-gateway' is revoked")
