"""Offline verifier: check orderlog's evidence without trusting the running system.

    python -m orderlog.audit_verify PROOF.json CHECKPOINT.json [--public-key KEY.pem]

This one module is everything an auditor needs, and it imports only the Python standard
library and `cryptography` (for Ed25519), so it can be copied and read on its own. It is
also where orderlog itself takes its hash rules from, so the writer and the auditor can
never disagree about what a hash means:

- a record's hash is SHA-256 over the RFC 8785 (JCS) canonical JSON of the record without
  its `hash` member; `prev_hash` links each record to the previous one of its stream
  (64 zeros for the first), one chain per order, SKU, customer or source;
- the global log is an RFC 9162 Merkle tree: leaf = SHA-256(0x00 || record hash bytes),
  node = SHA-256(0x01 || left || right); inclusion and consistency proofs are checked
  with the algorithms of RFC 9162 sections 2.1.3.2 and 2.1.4.2;
- a checkpoint {tree_size, root_hash, issued_at, key_id, signature} is signed with
  Ed25519 over the canonical JSON of its other members;
- an upstream source's signature is Ed25519 over the canonical JSON of its envelope
  without the `signature` member.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

GENESIS_HASH = "0" * 64
MAX_SAFE_INTEGER = 2**53 - 1


# ------------------------------------------------------------------ canonical JSON


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON for orderlog's values (strings, safe integers, booleans,
    null, arrays, objects with ASCII keys): there, sorted keys and compact separators
    give exactly the JCS bytes. Anything outside that subset (floats, huge integers,
    non-ASCII keys) would need JCS's number and UTF-16 key rules and is refused.
    """
    _check_canonical_subset(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def canonical_json_unchecked(value: Any) -> bytes:
    """The same bytes without the subset check, for values built from validated input."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _check_canonical_subset(value: Any) -> None:
    if value is None or isinstance(value, str | bool):
        return
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise ValueError(f"integer {value} is too large for canonical JSON (limit 2**53-1)")
        return
    if isinstance(value, list):
        for item in value:
            _check_canonical_subset(item)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise ValueError(f"object key {key!r} is not an ASCII string")
            _check_canonical_subset(item)
        return
    raise ValueError(f"{type(value).__name__} values have no canonical form here")


# ------------------------------------------------------------------ record hashes


def record_hash(record: dict[str, Any]) -> str:
    """The hex SHA-256 a stored record must carry as `hash`."""
    body = {name: value for name, value in record.items() if name != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def check_chain(records: Sequence[dict[str, Any]]) -> list[str]:
    """Problems with one stream's records, given in version order from version 1."""
    problems: list[str] = []
    previous = GENESIS_HASH
    for expected_version, record in enumerate(records, start=1):
        where = f"{record.get('stream')} {record.get('key')} version {record.get('version')}"
        if record.get("version") != expected_version:
            problems.append(f"{where}: expected version {expected_version}")
        if record.get("prev_hash") != previous:
            problems.append(f"{where}: prev_hash does not link to the previous record")
        try:
            recomputed = record_hash(record)
        except ValueError as error:
            problems.append(f"{where}: {error}")
            recomputed = None
        if recomputed != record.get("hash"):
            problems.append(f"{where}: hash does not match the record's content")
        previous = record.get("hash", "")
    return problems


# ------------------------------------------------------------------ RFC 9162 Merkle tree


def leaf_hash(record_hash_hex: str) -> bytes:
    return hashlib.sha256(b"\x00" + bytes.fromhex(record_hash_hex)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


EMPTY_TREE_HASH = hashlib.sha256(b"").digest()


def verify_inclusion(leaf_index: int, tree_size: int, leaf: bytes, path: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162, 2.1.3.2: is `leaf` at `leaf_index` in the tree of `tree_size` with `root`?"""
    if leaf_index >= tree_size or leaf_index < 0:
        return False
    fn, sn, result = leaf_index, tree_size - 1, leaf
    for sibling in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and result == root


def verify_consistency(
    first_size: int, second_size: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162, 2.1.4.2: does the tree of `second_size` extend the one of `first_size`?"""
    if first_size > second_size or first_size < 0:
        return False
    if first_size == second_size:
        return not proof and first_root == second_root
    if first_size == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if first_size & (first_size - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first_size - 1, second_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first, second = path[0], path[0]
    for sibling in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            first = node_hash(sibling, first)
            second = node_hash(sibling, second)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            second = node_hash(second, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and first == first_root and second == second_root


# ------------------------------------------------------------------ signatures


def public_key_id(public_key_pem: str | bytes) -> str:
    """A short fingerprint of an Ed25519 public key: 16 hex digits of SHA-256 of its raw bytes."""
    from cryptography.hazmat.primitives import serialization

    key = load_public_key(public_key_pem)
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(public_key_pem: str | bytes) -> Any:
    """An Ed25519 public key from PEM; raises ValueError for anything else."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = serialization.load_pem_public_key(_as_bytes(public_key_pem))
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def verify_signature(public_key: Any, signature_b64: str, message: bytes) -> bool:
    """Ed25519 check of a standard-base64 signature with a loaded public key."""
    from cryptography.exceptions import InvalidSignature

    try:
        public_key.verify(base64.b64decode(signature_b64, validate=True), message)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def ed25519_verify(public_key_pem: str | bytes, signature_b64: str, message: bytes) -> bool:
    try:
        key = load_public_key(public_key_pem)
    except (ValueError, TypeError):
        return False
    return verify_signature(key, signature_b64, message)


def checkpoint_payload(checkpoint: dict[str, Any]) -> bytes:
    """The bytes a checkpoint's signature covers."""
    return canonical_json({k: checkpoint[k] for k in ("tree_size", "root_hash", "issued_at", "key_id")})


def envelope_payload(envelope: dict[str, Any], *, checked: bool = True) -> bytes:
    """The bytes an upstream source signs: its envelope without `signature`, canonical.
    `checked=False` skips the subset check, for envelopes that passed strict validation."""
    unsigned = {k: v for k, v in envelope.items() if k != "signature"}
    return canonical_json(unsigned) if checked else canonical_json_unchecked(unsigned)


def _as_bytes(text: str | bytes) -> bytes:
    return text.encode() if isinstance(text, str) else text


# ------------------------------------------------------------------ proof files


def verify_checkpoint(checkpoint: dict[str, Any], public_key_pem: str | bytes) -> list[str]:
    problems = []
    key_id = public_key_id(public_key_pem)
    if checkpoint.get("key_id") != key_id:
        problems.append(f"checkpoint names key {checkpoint.get('key_id')}, the public key given is {key_id}")
    elif not ed25519_verify(public_key_pem, checkpoint.get("signature", ""), checkpoint_payload(checkpoint)):
        problems.append("checkpoint signature is not valid for its content")
    return problems


def verify_proof(proof: dict[str, Any], checkpoint: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(problems, notes) for an order proof against a checkpoint; no problems means proven."""
    problems: list[str] = []
    notes: list[str] = []
    if proof.get("tree_size") != checkpoint.get("tree_size") or proof.get("root_hash") != checkpoint.get("root_hash"):
        problems.append("the proof was made against a different checkpoint (tree size or root differ)")
        return problems, notes
    root = bytes.fromhex(checkpoint["root_hash"])
    tree_size = checkpoint["tree_size"]
    records = [entry["record"] for entry in proof.get("events", [])]
    if not records:
        problems.append("the proof holds no events")
    problems += check_chain(records)
    for entry in proof.get("events", []):
        record = entry["record"]
        where = f"{record.get('stream')} {record.get('key')} version {record.get('version')}"
        try:
            leaf = leaf_hash(record_hash(record))
        except ValueError as error:
            problems.append(f"{where}: {error}")
            continue
        path = [bytes.fromhex(h) for h in entry.get("inclusion", [])]
        if not verify_inclusion(entry.get("leaf_index", -1), tree_size, leaf, path, root):
            problems.append(f"{where}: not included in the checkpointed log (inclusion proof fails)")
        problems += _check_source_signature(record, proof.get("sources", {}), notes)
    return problems, notes


def _check_source_signature(record: dict[str, Any], sources: dict[str, list[str]], notes: list[str]) -> list[str]:
    where = f"{record.get('stream')} {record.get('key')} version {record.get('version')}"
    if not record.get("signature"):
        return []
    envelope_text = record.get("signed_envelope")
    if not envelope_text or not envelope_text.startswith("{"):
        notes.append(
            f"{where}: signed by {record['source']}; the signed envelope holds personal data "
            "and is encrypted (or erased), so the signature cannot be checked here"
        )
        return []
    keys = sources.get(record["source"], [])
    if not any(ed25519_verify(key, record["signature"], envelope_text.encode()) for key in keys):
        return [f"{where}: signature does not verify with any key of source {record['source']!r}"]
    envelope = json.loads(envelope_text)
    key_field = {"order": "order_id", "sku": "sku"}.get(record["stream"], "order_id")
    for field, expected in (
        ("event_id", record["event_id"]),
        (key_field, record["key"]),
        ("source", record["source"]),
    ):
        if envelope.get(field) != expected:
            return [f"{where}: the signed envelope's {field} differs from the record"]
    notes.append(f"{where}: signed by source {record['source']!r}")
    return []


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orderlog.audit_verify",
        description="Check an orderlog order proof against a signed checkpoint, offline.",
    )
    parser.add_argument("proof", help="proof.json written by `orderlog audit proof`")
    parser.add_argument("checkpoint", help="checkpoint.json written by `orderlog audit checkpoint`")
    parser.add_argument(
        "--public-key",
        help="the log's Ed25519 public key (PEM) that you trust; "
        "without it the key embedded in the proof is used and its fingerprint printed",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        with open(args.proof, encoding="utf-8") as file:
            proof = json.load(file)
        with open(args.checkpoint, encoding="utf-8") as file:
            checkpoint = json.load(file)
        if args.public_key:
            with open(args.public_key, "rb") as file:
                public_key = file.read()
        else:
            public_key = proof.get("log_public_key", "").encode()
        problems = verify_checkpoint(checkpoint, public_key)
        more, notes = verify_proof(proof, checkpoint)
        problems += more
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"audit_verify: cannot read the proof or checkpoint: {error}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"note: {note}")
    if problems:
        for problem in problems:
            print(f"FAILED: {problem}")
        return 1
    source = "given" if args.public_key else "embedded in the proof (compare its fingerprint with the one you trust)"
    print(
        f"verified {len(proof['events'])} events of {proof.get('stream', 'order')} {proof.get('key')} "
        f"against checkpoint tree_size {checkpoint['tree_size']} root {checkpoint['root_hash']}, "
        f"signed by key {checkpoint['key_id']} ({source})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
