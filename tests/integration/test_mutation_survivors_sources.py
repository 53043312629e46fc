"""What `make mutation` found untested in orderlog.sources with a store: the registry's
messages and who is recorded for each change, and the gate's rejections naming their line's
event and stream. (The key files and the manifest are in tests/unit/test_mutation_survivors_sources.py.)
"""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orderlog.application import OrderLog
from orderlog.audit_verify import envelope_payload
from orderlog.config import Config
from orderlog.domain.contract import UPSTREAM_TYPES
from orderlog.domain.source import Source
from orderlog.sources.registry import SourceError, SourceRequest, register_source, revoke_source
from orderlog.sources.signing import parse_json_object, public_pem, sign_envelope
from tests import builders as b
from tests.integration.test_signatures import PAYMENTS, SHOP, publish_with, registered  # noqa: F401


def test_registering_a_source_says_it_is_new_and_records_who_did_it(registered: OrderLog) -> None:  # noqa: F811
    other = Ed25519PrivateKey.generate()
    key, new = register_source(registered, SourceRequest("erp", ["OrderConfirmed"], public_pem(other).decode()), "bob")
    assert new is True and key.registered_by == "bob"
    revoke_source(registered, "erp", "rotated", "carol")
    (registration, revocation) = registered.records(Source, "erp")
    assert (registration.actor, revocation.actor, revocation.data["reason"]) == ("bob", "carol", "rotated")


def test_registry_mistakes_are_said_in_full(registered: OrderLog) -> None:  # noqa: F811
    choose = f"choose from {', '.join(UPSTREAM_TYPES)}"
    with pytest.raises(SourceError) as raised:
        register_source(registered, SourceRequest("erp", ["OrderShipped", "Nope"], public_pem(SHOP).decode()), "ops")
    assert str(raised.value) == f"unknown event type(s) OrderShipped, Nope; {choose}"
    with pytest.raises(SourceError) as raised:
        register_source(registered, SourceRequest("erp", [], public_pem(SHOP).decode()), "ops")
    assert str(raised.value) == f"unknown event type(s) (none given); {choose}"
    stranger = public_pem(Ed25519PrivateKey.generate()).decode()
    with pytest.raises(SourceError, match=r"; revoke it first to rotate its key$"):
        register_source(registered, SourceRequest("shop", ["OrderSubmitted"], stranger), "ops")


@pytest.mark.usefixtures("registered")
def test_a_type_a_source_may_not_publish_is_rejected_naming_what_it_may(config: Config) -> None:
    refund = sign_envelope(SHOP, b.refunded(source="shop", event_id="E-refund", order_id="SO-77"))
    (result,) = publish_with(config, refund)
    assert result.reason == "source 'shop' may not publish RefundIssued (it may publish OrderCancelled, OrderSubmitted)"
    assert (result.event_id, result.key) == ("E-refund", "SO-77")


def test_signing_replaces_an_earlier_signature() -> None:
    envelope = {**b.paid(source="payment-gateway"), "signature": "A" * 86 + "=="}
    signed = sign_envelope(PAYMENTS, envelope)
    unsigned = {k: v for k, v in envelope.items() if k != "signature"}
    assert {k: v for k, v in signed.items() if k != "signature"} == unsigned
    PAYMENTS.public_key().verify(base64.b64decode(signed["signature"]), envelope_payload(unsigned))


def test_a_signed_text_must_be_one_json_object_naming_each_member_once() -> None:
    assert parse_json_object('{"a": 1}') == {"a": 1}
    with pytest.raises(ValueError, match=r"^duplicate member 'a'$"):
        parse_json_object('{"a": 1, "a": 2}')
    with pytest.raises(ValueError, match=r"^not a JSON object$"):
        parse_json_object(json.dumps([1]))
