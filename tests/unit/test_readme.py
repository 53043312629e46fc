"""The README's contract examples, reason table and signing snippet are what the code does."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orderlog.audit_verify import ed25519_verify, envelope_payload
from orderlog.domain.contract import UPSTREAM_TYPES
from orderlog.domain.envelope import read_envelope
from orderlog.domain.reasons import CANCELLATION_REASONS
from orderlog.sources.signing import public_pem

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_every_upstream_type_has_a_valid_example() -> None:
    examples = [line for line in blocks("json")[1].splitlines() if line.strip()]
    types = [read_envelope(line).type for line in examples]
    assert sorted(types) == sorted(UPSTREAM_TYPES)


def test_the_envelope_example_is_valid() -> None:
    assert read_envelope(blocks("json")[0]).type == "PaymentCaptured"


def test_the_reason_table_is_the_taxonomy() -> None:
    rows = re.findall(r"^\| (customer|merchant|external|system|other) \| (.+) \|$", README, flags=re.MULTILINE)
    listed = {code.split(" ")[0]: category for category, codes in rows for code in codes.split(", ")}
    assert listed == {code: category.value for code, category in CANCELLATION_REASONS.items()}


def test_the_signing_snippet_produces_signatures_orderlog_accepts() -> None:
    from cryptography.hazmat.primitives import serialization

    namespace: dict[str, object] = {}
    exec(blocks("python")[0], namespace)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    envelope = json.loads(blocks("json")[0])
    signed = namespace["sign_envelope"](envelope, pem)  # type: ignore[operator]
    assert ed25519_verify(public_pem(key), signed["signature"], envelope_payload(signed))
    assert read_envelope(json.dumps(signed)).signature == signed["signature"]
