"""What `make mutation` found untested in orderlog.sources: the key files, the sources
manifest and signed simulated traffic, which only the command-line tests (in subprocesses,
out of mutmut's reach) exercised. Here they run in-process, on files in a temporary directory.
"""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from orderlog.audit_verify import envelope_payload, load_public_key
from orderlog.simulate import SOURCES
from orderlog.sources.registry import SourceError, SourceRequest, read_manifest
from orderlog.sources.signing import (
    KeyFileError,
    load_private_key,
    public_key_path,
    public_pem,
    read_public_key,
    write_key_pair,
)
from orderlog.sources.simulated import sign_simulated, source_keys
from tests import builders as b


def test_a_public_key_file_sits_beside_its_private_key() -> None:
    assert public_key_path(Path("keys/log.pem")) == Path("keys/log.pub.pem")
    assert public_key_path(Path("keys/log.key")) == Path("keys/log.key.pub.pem")


def test_a_key_pair_is_written_private_to_its_owner_and_never_overwritten(tmp_path: Path) -> None:
    private = tmp_path / "log.pem"
    public = write_key_pair(private)
    assert public == tmp_path / "log.pub.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    key = load_private_key(private)
    assert public.read_bytes() == public_pem(key)
    assert read_public_key(public) == public.read_text()
    with pytest.raises(KeyFileError, match=rf"^{private} exists already; orderlog never overwrites a key$"):
        write_key_pair(private)
    missing = tmp_path / "no-such-directory" / "log.pem"
    with pytest.raises(KeyFileError, match=rf"^cannot write {missing}: No such file or directory$"):
        write_key_pair(missing)


def test_key_files_that_are_missing_or_of_the_wrong_kind_are_named(tmp_path: Path) -> None:
    absent = tmp_path / "absent.pem"
    with pytest.raises(KeyFileError, match=rf"^key file {absent} does not exist$"):
        load_private_key(absent)
    with pytest.raises(KeyFileError, match=rf"^public key file {absent} does not exist$"):
        read_public_key(absent)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(KeyFileError, match=rf"^{garbage} is not an unencrypted PEM private key: "):
        load_private_key(garbage)
    with pytest.raises(KeyFileError, match=rf"^{garbage} is not an Ed25519 public key in PEM form: "):
        read_public_key(garbage)
    other = ec.generate_private_key(ec.SECP256R1())
    elliptic = tmp_path / "ec.pem"
    elliptic.write_bytes(
        other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    with pytest.raises(KeyFileError, match=rf"^{elliptic} is not an Ed25519 private key$"):
        load_private_key(elliptic)
    elliptic_public = tmp_path / "ec.pub.pem"
    elliptic_public.write_bytes(
        other.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(KeyFileError, match=rf"^{elliptic_public} is not an Ed25519 public key in PEM form: "):
        read_public_key(elliptic_public)


def test_a_sources_manifest_names_each_source_its_types_and_its_key_file_beside_it(tmp_path: Path) -> None:
    public = write_key_pair(tmp_path / "pay.pem")
    manifest = tmp_path / "sources.json"
    manifest.write_text(json.dumps({"payments": {"public_key": public.name, "types": ["PaymentCaptured"]}}))
    assert read_manifest(manifest) == [SourceRequest("payments", ["PaymentCaptured"], public.read_text())]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "does not exist"),
        ("{", "is not JSON: "),
        ("{}", "must be an object naming each source"),
        ("[1]", "must be an object naming each source"),
        ('{"pay": {"types": []}}', "'pay' needs a public_key file name"),
        ('{"pay": "pay.pub.pem"}', "'pay' needs a public_key file name"),
        ('{"pay": {"public_key": 5, "types": []}}', "'pay' needs a public_key file name"),
        ('{"pay": {"public_key": "pay.pub.pem"}}', "'pay' needs a list of types"),
        ('{"pay": {"public_key": "pay.pub.pem", "types": [1]}}', "'pay' needs a list of types"),
        ('{"pay": {"public_key": "pay.pub.pem", "types": "PaymentCaptured"}}', "'pay' needs a list of types"),
    ],
)
def test_a_sources_manifest_that_cannot_be_used_is_named(tmp_path: Path, content: str | None, problem: str) -> None:
    manifest = tmp_path / "sources.json"
    if content is not None:
        manifest.write_text(content)
    with pytest.raises(SourceError) as raised:
        read_manifest(manifest)
    assert str(raised.value).startswith(f"sources file {manifest}")
    assert problem in str(raised.value)


def test_simulated_sources_get_a_key_each_and_a_manifest_that_registers_them(tmp_path: Path) -> None:
    said: list[str] = []
    directory = tmp_path / "signing" / "keys"  # made, parents and all
    keys = source_keys(directory, said.append)
    assert (directory / "sources.json").read_text(encoding="utf-8").startswith('{\n  "shop-app": {\n    "public_key"')
    assert keys == {source: directory / f"{source}.pem" for source in SOURCES}
    assert said == [f"signing keys of {len(SOURCES)} simulated sources are in {directory} (see sources.json)"]
    requests = read_manifest(directory / "sources.json")
    assert {r.name: r.types for r in requests} == SOURCES
    assert all(r.public_key == public_pem(load_private_key(keys[r.name])).decode() for r in requests)
    first = (directory / "erp.pem").read_bytes()
    source_keys(directory, said.append)
    assert (directory / "erp.pem").read_bytes() == first  # kept, not made again


def test_simulated_traffic_is_signed_by_its_source_and_anything_else_passes_unchanged(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    paid = b.paid(source="payment-gateway")
    stranger = b.paid(source="somebody-else")
    lines = [b.line(paid), "{not json", "[1, 2]", b.line(stranger)]
    signed, garbage, array, unknown = sign_simulated(lines, directory, lambda _said: None)
    assert (garbage, array, unknown) == ("{not json", "[1, 2]", b.line(stranger))
    envelope = json.loads(signed)
    assert {k: v for k, v in envelope.items() if k != "signature"} == paid
    public = load_public_key(read_public_key(directory / "payment-gateway.pub.pem"))
    public.verify(base64.b64decode(envelope["signature"]), envelope_payload(paid))
    named = b.paid(source="payment-gateway", actor="王")
    (again,) = sign_simulated([b.line(named)], directory, lambda _said: None)
    assert "王" in again  # written as UTF-8, not escaped
