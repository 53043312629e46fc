"""Ed25519 keys and signatures: for orderlog's checkpoints and for upstream sources.

Private keys are PKCS#8 PEM files readable only by their owner; public keys are PEM
(SubjectPublicKeyInfo). An upstream signature is the standard base64 of the 64-byte
Ed25519 signature over the RFC 8785 canonical JSON of the envelope without `signature`
(orderlog.audit_verify.envelope_payload); orderlog keeps only public keys.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orderlog.audit_verify import envelope_payload, load_public_key
from orderlog.domain.envelope import DuplicateMember, refuse_duplicate_members


class KeyFileError(Exception):
    """A key file that cannot be read or written as asked."""


def public_key_path(private_key_path: Path) -> Path:
    """Where the public key of `log.pem` lives: `log.pub.pem` beside it."""
    if private_key_path.suffix == ".pem":
        return private_key_path.with_suffix(".pub.pem")
    return private_key_path.with_name(private_key_path.name + ".pub.pem")


def write_key_pair(private_key_path: Path) -> Path:
    """Writes a new private key (mode 600, never overwriting) and its public key beside it."""
    for path in (private_key_path, public_key_path(private_key_path)):  # the private one is also created exclusively
        if path.exists():
            raise KeyFileError(f"{path} exists already; orderlog never overwrites a key")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        descriptor = os.open(private_key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{private_key_path} exists already; orderlog never overwrites a key") from None
    except OSError as error:
        raise KeyFileError(f"cannot write {private_key_path}: {error.strerror}") from None
    with os.fdopen(descriptor, "wb") as file:
        file.write(private_pem)
    public_path = public_key_path(private_key_path)
    public_path.write_bytes(public_pem(key))
    return public_path


def public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist") from None
    except (ValueError, TypeError) as error:
        raise KeyFileError(f"{path} is not an unencrypted PEM private key: {error}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an Ed25519 private key")
    return key


def read_public_key(path: Path) -> str:
    """A public key file's PEM text, checked to be an Ed25519 key."""
    try:
        text = path.read_text(encoding="ascii")
        load_public_key(text)
    except FileNotFoundError:
        raise KeyFileError(f"public key file {path} does not exist") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise KeyFileError(f"{path} is not an Ed25519 public key in PEM form: {error}") from None
    return text


def sign(key: Ed25519PrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message)).decode()


def sign_envelope(key: Ed25519PrivateKey, envelope: dict[str, Any]) -> dict[str, Any]:
    """The envelope with its `signature` (any earlier signature is replaced)."""
    unsigned = {name: value for name, value in envelope.items() if name != "signature"}
    return {**unsigned, "signature": sign(key, envelope_payload(unsigned))}


def parse_json_object(text: str | bytes) -> dict[str, Any]:
    """A JSON object, refusing duplicate member names (RFC 8785 forbids them)."""
    try:
        value = json.loads(text, object_pairs_hook=refuse_duplicate_members)
    except DuplicateMember as duplicate:
        raise ValueError(f"duplicate member {str(duplicate)!r}") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value
