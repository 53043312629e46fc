"""Offline verifier: check orderlog's evidence without trusting the running system.

    python -m orderlog.audit_verify PROOF.json CHECKPOINT.json [--public-key KEY.pem]

Exit codes: 0 verified; 1 verification failed (each failure on a `FAILED:` line); 2 a file
cannot be read as a proof, checkpoint or key (one line saying which file, where in it and
what is wrong); 3 a defect in this verifier (please report it).

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
- the map of stream heads says, for every stream in the first `tree_size` records, how
  many records it has and the hash of its last one. A stream belongs in bucket
  = the first 16 bits of SHA-256("<stream>/<key>") (65,536 buckets); a bucket's leaf =
  SHA-256(0x00 || canonical JSON of its entries [[stream, key, count, head_hash], ...],
  sorted by stream then key); the map root is the RFC 9162 tree over the 65,536 leaves.
  A map proof is one bucket's entries and the 16 sibling hashes from that leaf up;
- a checkpoint {tree_size, root_hash, map_root, issued_at, key_id, signature} is signed
  with Ed25519 over the canonical JSON of its other members (checkpoints issued before
  the map have no map_root; their proofs show inclusion, not completeness);
- an upstream source's signature is Ed25519 over the canonical JSON of its envelope
  without the `signature` member.

With the map, a proof shows that an order's records are complete: the map, signed in the
checkpoint, gives the order's record count and last hash at that size; the records run
as an unbroken chain from version 1 (genesis) to exactly that count and that hash; and
each is included in the checkpointed tree.

Nothing read from a file is printed as it is: characters that could move the cursor,
reverse the text or hide in it are shown as escapes (see `shown`).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import itertools
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn

GENESIS_HASH = "0" * 64
MAX_SAFE_INTEGER = 2**53 - 1


# ------------------------------------------------------------------ canonical JSON


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
"""One encoder for every call (json.dumps with options builds a new one each time)."""


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON for orderlog's values (strings, safe integers, booleans,
    null, arrays, objects with ASCII keys): there, sorted keys and compact separators
    give exactly the JCS bytes. Anything outside that subset (floats, huge integers,
    non-ASCII keys) would need JCS's number and UTF-16 key rules and is refused.
    """
    _check_canonical_subset(value)
    return _CANONICAL.encode(value).encode()


def canonical_json_unchecked(value: Any) -> bytes:
    """The same bytes without the subset check, for values built from validated input."""
    return _CANONICAL.encode(value).encode()


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


# ------------------------------------------------------------------ the map of stream heads

MAP_DEPTH = 16
MAP_BUCKETS = 1 << MAP_DEPTH

MapEntry = tuple[str, str, int, str]
"""(stream, key, record count, hash of the last record) of one stream."""


def map_bucket(stream: str, key: str) -> int:
    """The bucket a stream belongs in: the first 16 bits of SHA-256("<stream>/<key>")."""
    return int.from_bytes(hashlib.sha256(f"{stream}/{key}".encode()).digest()[:2], "big")


def bucket_leaf_hash(entries: Sequence[Sequence[Any]]) -> bytes:
    """A bucket's leaf: SHA-256(0x00 || canonical JSON of its entries, sorted by stream
    then key). The caller gives them sorted; an empty bucket's entries are `[]`."""
    return hashlib.sha256(b"\x00" + canonical_json_unchecked(entries)).digest()


EMPTY_BUCKET_HASH = bucket_leaf_hash([])


def map_root_from_path(bucket: int, leaf: bytes, path: Sequence[bytes]) -> bytes:
    """The map root that a bucket's leaf and its 16 sibling hashes (lowest first) lead to."""
    result, index = leaf, bucket
    for sibling in path:
        result = node_hash(sibling, result) if index & 1 else node_hash(result, sibling)
        index >>= 1
    return result


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


SIGNED_CHECKPOINT_MEMBERS = ("tree_size", "root_hash", "map_root", "issued_at", "key_id")


def checkpoint_payload(checkpoint: dict[str, Any]) -> bytes:
    """The bytes a checkpoint's signature covers: every member but `signature` (`map_root`
    only where the checkpoint has one, so older checkpoints verify as they were signed, and
    removing a map_root breaks the signature)."""
    return canonical_json({k: checkpoint[k] for k in SIGNED_CHECKPOINT_MEMBERS if k in checkpoint})


def envelope_payload(envelope: dict[str, Any], *, checked: bool = True) -> bytes:
    """The bytes an upstream source signs: its envelope without `signature`, canonical.
    `checked=False` skips the subset check, for envelopes that passed strict validation."""
    unsigned = {k: v for k, v in envelope.items() if k != "signature"}
    return canonical_json(unsigned) if checked else canonical_json_unchecked(unsigned)


def _as_bytes(text: str | bytes) -> bytes:
    return text.encode() if isinstance(text, str) else text


# ------------------------------------------------------------------ printing what files say


def shown(text: str, limit: int = 200) -> str:
    """`text` safe to print on a terminal: every character that is not printable (control
    characters, bidi overrides and isolates, zero-width characters, line separators, lone
    surrogates) as a `\\uXXXX` escape and backslashes doubled, so a hostile file can
    neither repaint the terminal nor make two different names look alike; cut after
    `limit` characters."""
    cut = f"... ({len(text)} characters)" if len(text) > limit else ""
    text = text[:limit]
    if text.isprintable() and "\\" not in text:
        return text + cut
    return "".join(_shown_character(character) for character in text) + cut


def _shown_character(character: str) -> str:
    if character == "\\":
        return "\\\\"
    if character.isprintable():
        return character
    code = ord(character)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _kind(value: Any) -> str:
    """How a JSON value is named in a message: `null`, `a string ("abc")`, `an array`..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"the number {_number(value)}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f'a string ("{shown(value, 40)}")'
    return "an array" if isinstance(value, list) else "an object"


def _number(value: int) -> str:
    digits = len(str(abs(value)))
    return str(value) if digits <= 20 else f"{'-' if value < 0 else ''}of {digits} digits"


# ------------------------------------------------------------------ reading proof, checkpoint and key files


class Unreadable(ValueError):
    """A file that is not a proof, checkpoint or key as orderlog writes them; the message
    names the file, where in it, and what is wrong."""


class _Misshapen(Exception):
    def __init__(self, path: str, what: str):
        super().__init__(what)
        self.path, self.what = path, what


MAX_DEPTH = 32
"""Deeper than any proof or checkpoint orderlog writes (a record's data nests 4 levels)."""


def read_json_file(path: str, label: str | None = None) -> Any:
    """A file's JSON value, or Unreadable saying why not (missing, a directory, not UTF-8,
    not JSON, a member given twice, nested too deeply, an integer of thousands of digits),
    naming the file as `label` (default: its path)."""
    name = label or shown(path)
    data = _read_bytes(path, name)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Unreadable(f"{name}: not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})") from None
    if not text.strip():
        raise Unreadable(f"{name}: is empty")
    try:
        return json.loads(text, object_pairs_hook=_members_once, parse_constant=_no_constant, parse_int=_integer)
    except json.JSONDecodeError as error:
        raise Unreadable(f"{name}: not JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    except RecursionError:
        raise Unreadable(f"{name}: JSON nested too deeply") from None
    except ValueError as error:  # a member given twice, an integer beyond Python's digit limit
        raise Unreadable(f"{name}: {shown(str(error))}") from None


def _members_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        names = [name for name, _ in pairs]
        twice = next(name for name in names if names.count(name) > 1)
        raise ValueError(f'an object holds member "{shown(twice)}" twice')
    return members


def _integer(digits: str) -> int:
    if len(digits) > 100:  # far beyond 2**53 (Python refuses to read 4,300 digits or more)
        raise ValueError(f"a number of {len(digits.lstrip('-'))} digits is beyond 2**53-1, the largest orderlog writes")
    return int(digits)


def _no_constant(constant: str) -> NoReturn:
    raise ValueError(f"{constant} is not a JSON number")


def _check_values(document: Any) -> None:
    """Every value within orderlog's JSON subset, without recursion: nesting at most
    MAX_DEPTH, no fractions, integers within 2**53-1, no lone surrogates in strings."""
    pending: list[tuple[Any, str, int]] = [(document, "", 0)]
    while pending:
        value, path, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise _Misshapen(path, f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, str):
            _check_text(value, path)
        elif isinstance(value, float):
            raise _Misshapen(path, f"{value!r} is not a whole number (orderlog's files hold no fractions)")
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
            raise _Misshapen(path, f"the number {_number(value)} is beyond 2**53-1, the largest orderlog writes")
        elif isinstance(value, list):
            pending += [(item, _at(path, index), depth + 1) for index, item in enumerate(value)]
        elif isinstance(value, dict):
            for name, item in value.items():
                _check_text(name, path)
                pending.append((item, _at(path, name), depth + 1))


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        surrogate = f"\\u{ord(text[error.start]):04x}"
        raise _Misshapen(path, f"a string holds a lone surrogate ({surrogate}), which no UTF-8 file can") from None


def _at(path: str, member: str | int) -> str:
    if isinstance(member, int):
        return f"{path}[{member}]"
    name = member if member.isidentifier() else json.dumps(member, ensure_ascii=False)
    return f"{path}.{shown(name)}" if path else shown(name)


Check = Callable[[Any, str], None]


def _whole(low: int, high: int = MAX_SAFE_INTEGER) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Misshapen(path, f"expected a whole number, got {_kind(value)}")
        if not low <= value <= high:
            raise _Misshapen(path, f"{_number(value)} is out of range ({low} to {high})")

    return check


def _hex(size: int = 32) -> Check:
    def check(value: Any, path: str) -> None:
        if not (isinstance(value, str) and len(value) == 2 * size and set(value) <= HEX_DIGITS):
            raise _Misshapen(path, f"expected {2 * size} lowercase hex digits, got {_kind(value)}")

    return check


HEX_DIGITS = frozenset("0123456789abcdef")


def _text(value: Any, path: str) -> None:
    if not isinstance(value, str):
        raise _Misshapen(path, f"expected a string, got {_kind(value)}")


def _text_or_null(value: Any, path: str) -> None:
    if value is not None:
        _text(value, path)


def _signature(value: Any, path: str) -> None:
    try:
        valid = isinstance(value, str) and len(base64.b64decode(value, validate=True)) == 64
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        raise _Misshapen(path, f"expected an Ed25519 signature in standard base64, got {_kind(value)}")


def _array(item: Check, *, most: int | None = None, exactly: int | None = None) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise _Misshapen(path, f"expected an array, got {_kind(value)}")
        if exactly is not None and len(value) != exactly:
            raise _Misshapen(path, f"expected {exactly} items, got {len(value)}")
        if most is not None and len(value) > most:
            raise _Misshapen(path, f"expected at most {most} items, got {len(value)}")
        for index, element in enumerate(value):
            item(element, _at(path, index))

    return check


def _row(*items: Check) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, list) or len(value) != len(items):
            got = f"{len(value)} items" if isinstance(value, list) else _kind(value)
            raise _Misshapen(path, f"expected an array of {len(items)} items, got {got}")
        for index, (element, item) in enumerate(zip(value, items, strict=True)):
            item(element, _at(path, index))

    return check


def _object(required: dict[str, Check], optional: dict[str, Check] | None = None, *, others: bool = False) -> Check:
    """An object with the `required` members, maybe the `optional` ones, and others only if allowed."""
    optional = optional or {}

    def check(value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise _Misshapen(path, f"expected an object, got {_kind(value)}")
        for name, member in (*required.items(), *optional.items()):
            if name in value:
                member(value[name], _at(path, name))
            elif name in required:
                raise _Misshapen(path, f'missing member "{name}"')
        if not others and (unexpected := [name for name in value if name not in required and name not in optional]):
            raise _Misshapen(path, f'unexpected member "{shown(unexpected[0])}"')

    return check


def _mapping(item: Check) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise _Misshapen(path, f"expected an object, got {_kind(value)}")
        for name, element in value.items():
            item(element, _at(path, name))

    return check


_record_members = _object(
    {
        "stream": _text,
        "key": _text,
        "version": _whole(1),
        "prev_hash": _hex(),
        "hash": _hex(),
        "event_id": _text,
        "source": _text,
    },
    {"signature": _text_or_null, "signed_envelope": _text_or_null},
    others=True,  # the rest is the record's content: hashed, not interpreted
)


def _record(value: Any, path: str) -> None:
    _record_members(value, path)
    pending = [(value, path)]
    while pending:  # member names must be ASCII for the canonical form (RFC 8785 sorts UTF-16 units)
        item, where = pending.pop()
        if isinstance(item, dict):
            for name, member in item.items():
                if not name.isascii():
                    raise _Misshapen(where, f'member name "{shown(name)}" is not ASCII, which no record holds')
                pending.append((member, _at(where, name)))
        elif isinstance(item, list):
            pending += [(member, _at(where, index)) for index, member in enumerate(item)]


CHECKPOINT_SHAPE = _object(
    {
        "tree_size": _whole(0),
        "root_hash": _hex(),
        "issued_at": _text,
        "key_id": _hex(8),
        "signature": _signature,
    },
    {"map_root": _hex()},
)

PROOF_SHAPE = _object(
    {
        "stream": _text,
        "key": _text,
        "tree_size": _whole(0),
        "root_hash": _hex(),
        "events": _array(_object({"record": _record, "leaf_index": _whole(0), "inclusion": _array(_hex(), most=64)})),
        "sources": _mapping(_array(_text)),
        "log_public_key": _text,
    },
    {
        "records_after_checkpoint": _whole(0),
        "map_root": _hex(),
        "map": _object(
            {
                "bucket": _whole(0, MAP_BUCKETS - 1),
                "entries": _array(_row(_text, _text, _whole(1), _hex())),
                "path": _array(_hex(), exactly=MAP_DEPTH),
            }
        ),
    },
)


def check_shape(document: Any, shape: Check, label: str) -> dict[str, Any]:
    """`document` (from the file named `label`) if it has `shape`; else Unreadable naming
    where and what, e.g. `proof.json: events[3].record: expected an object, got null`."""
    try:
        _check_values(document)
        shape(document, "")
    except _Misshapen as problem:
        where = ": ".join(part for part in (label, problem.path) if part)
        raise Unreadable(f"{where}: {problem.what}" if where else problem.what) from None
    return document  # type: ignore[no-any-return]


def check_checkpoint(document: Any, label: str) -> dict[str, Any]:
    """A checkpoint as orderlog writes it: tree_size a whole number within 2**53-1, the
    hashes 64 hex digits, the key id 16, a base64 signature, nothing else."""
    return check_shape(document, CHECKPOINT_SHAPE, label)


def check_proof(document: Any, label: str) -> dict[str, Any]:
    """A proof as `orderlog audit proof` writes it (see README, "For auditors")."""
    return check_shape(document, PROOF_SHAPE, label)


def read_public_key_file(path: str) -> bytes:
    """A PEM file holding an Ed25519 public key, or Unreadable."""
    pem = _read_bytes(path, shown(path))
    try:
        load_public_key(pem)
    except (ValueError, TypeError):
        raise Unreadable(f"{shown(path)}: not an Ed25519 public key in PEM form") from None
    return pem


def _read_bytes(path: str, name: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except FileNotFoundError:
        raise Unreadable(f"{name}: no such file") from None
    except IsADirectoryError:
        raise Unreadable(f"{name}: is a directory, not a file") from None
    except OSError as error:
        raise Unreadable(f"{name}: cannot be read ({error.strerror or error})") from None


# ------------------------------------------------------------------ verifying a proof


def verify_checkpoint(checkpoint: dict[str, Any], public_key_pem: str | bytes) -> list[str]:
    """Why this checkpoint was not signed by the holder of the key (empty: it was)."""
    key_id = public_key_id(public_key_pem)
    if checkpoint.get("key_id") != key_id:
        named = shown(str(checkpoint.get("key_id")))
        return [f"it names key {named}, but the log's public key is {key_id}: it was signed by another key"]
    if not ed25519_verify(public_key_pem, checkpoint.get("signature", ""), checkpoint_payload(checkpoint)):
        return [f"its signature does not verify with key {key_id}: it was altered after signing, or never signed"]
    return []


def verify_proof(proof: dict[str, Any], checkpoint: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(problems, notes) for an order proof against a checkpoint, both of the shape
    `check_proof` and `check_checkpoint` demand. No problems means proven: every record
    is included in the checkpointed log, and, when the checkpoint has a map_root, the
    records are all of the order's records at that size (version 1 to the count the map
    holds, the last one's hash the map's head)."""
    for member in ("tree_size", "root_hash", "map_root"):
        if proof.get(member) != checkpoint.get(member):
            return [
                f"the proof was made against another checkpoint: its {member} is {_stated(proof.get(member))}, "
                f"the checkpoint's is {_stated(checkpoint.get(member))}"
            ], []
    problems: list[str] = []
    notes: list[str] = []
    stream, key = proof["stream"], proof["key"]
    subject = f"{shown(stream)} {shown(key)}"
    own: list[tuple[int, dict[str, Any]]] = []
    for index, entry in enumerate(proof["events"]):
        record = entry["record"]
        where = f"events[{index}] ({_label(record)})"
        if (record["stream"], record["key"]) != (stream, key):
            problems.append(f"{where} is a record of {_label(record, version=False)}, not of {subject}")
            continue
        own.append((index, record))
        problems += _inclusion_problems(where, entry, checkpoint)
        problems += _check_source_signature(record, proof["sources"], notes)
    if not proof["events"]:
        problems.append("the proof holds no events")
    head = None
    if "map_root" in checkpoint:
        head, map_problems = _head_in_map(proof, checkpoint, subject)
        problems += map_problems
    if proof["events"] and (head is not None or "map_root" not in checkpoint):
        problems += _sequence_problems(own, subject, head)
    if later := proof.get("records_after_checkpoint"):
        records = "1 record" if later == 1 else f"{later} records"
        notes.append(f"{records} of {subject} stored after this checkpoint: not covered by it, nor by this proof")
    return problems, notes


def _stated(value: Any) -> str:
    return "absent" if value is None else shown(str(value))


def _label(record: dict[str, Any], *, version: bool = True) -> str:
    label = f"{shown(record['stream'])} {shown(record['key'])}"
    return f"{label} version {record['version']}" if version else label


def _inclusion_problems(where: str, entry: dict[str, Any], checkpoint: dict[str, Any]) -> list[str]:
    record = entry["record"]
    recomputed = record_hash(record)
    if recomputed != record["hash"]:
        return [f"{where}: its hash does not match its content: the record was altered"]
    path = [bytes.fromhex(digest) for digest in entry["inclusion"]]
    root = bytes.fromhex(checkpoint["root_hash"])
    if not verify_inclusion(entry["leaf_index"], checkpoint["tree_size"], leaf_hash(recomputed), path, root):
        return [f"{where}: not included in the checkpointed log (its inclusion proof fails)"]
    return []


def _head_in_map(proof: dict[str, Any], checkpoint: dict[str, Any], subject: str) -> tuple[MapEntry | None, list[str]]:
    """The order's (stream, key, count, head) as the checkpoint's map holds it, or why not."""
    if "map" not in proof:
        return None, [
            "the checkpoint signs a map of stream heads (map_root), but the proof holds no map proof, "
            f"so it cannot show that these are all the records of {subject}"
        ]
    stream, key = proof["stream"], proof["key"]
    bucket = map_bucket(stream, key)
    stated = proof["map"]
    entries: list[MapEntry] = [tuple(entry) for entry in stated["entries"]]  # type: ignore[misc]
    names = [(entry[0], entry[1]) for entry in entries]
    if stated["bucket"] != bucket:
        return None, [f"the map proof is for bucket {stated['bucket']}, but {subject} belongs in bucket {bucket}"]
    if names != sorted(set(names)):
        return None, ["the map proof's bucket entries are not sorted by stream and key, or repeat one"]
    for entry_stream, entry_key, _count, _head in entries:
        if map_bucket(entry_stream, entry_key) != bucket:
            return None, [
                f"the map proof's bucket {bucket} holds {shown(entry_stream)} {shown(entry_key)}, which belongs in "
                f"bucket {map_bucket(entry_stream, entry_key)}"
            ]
    path = [bytes.fromhex(digest) for digest in stated["path"]]
    if map_root_from_path(bucket, bucket_leaf_hash(entries), path).hex() != checkpoint["map_root"]:
        return None, [
            f"the map proof does not lead to the checkpoint's map_root: the entries of {subject}'s bucket "
            "or their path were altered"
        ]
    found = next((entry for entry in entries if (entry[0], entry[1]) == (stream, key)), None)
    if found is None:
        return None, [
            f"the checkpoint's map holds no entry for {subject}: it had no record in the first "
            f"{checkpoint['tree_size']} records of the log"
        ]
    return found, []


def _sequence_problems(own: list[tuple[int, dict[str, Any]]], subject: str, head: MapEntry | None) -> list[str]:
    """What keeps the records from being one unbroken chain from version 1 (genesis) to the
    map's head: records out of order, versions missing (at the start, inside, or at the
    end, where only the map can tell), links that do not hold, a last hash that is not the
    head."""
    problems: list[str] = []
    for (before_at, before), (index, record) in itertools.pairwise(own):
        if record["version"] <= before["version"]:
            problems.append(
                f"events[{index}] ({subject} version {record['version']}) comes after version "
                f"{before['version']} (events[{before_at}]): the records are out of order or repeated"
            )
        elif record["version"] == before["version"] + 1 and record["prev_hash"] != before["hash"]:
            problems.append(
                f"events[{index}] ({subject} version {record['version']}): its prev_hash does not link to "
                f"version {before['version']}"
            )
    if own and own[0][1]["version"] == 1 and own[0][1]["prev_hash"] != GENESIS_HASH:
        problems.append(f"events[{own[0][0]}] ({subject} version 1): its prev_hash is not the genesis hash")
    present = sorted({record["version"] for _, record in own})
    count = head[2] if head is not None else (present[-1] if present else 0)
    expected = 1
    for version in [*present, count + 1]:
        if version > count + 1:
            break
        if version > expected:
            problems.append(_missing(expected, version - 1, count, subject, head, starts=expected == 1))
        expected = max(expected, version + 1)
    if head is not None:
        problems += [
            f"events[{index}] ({subject} version {record['version']}) is beyond the {count} records the "
            f"checkpoint's map holds for {subject}"
            for index, record in own
            if record["version"] > count
        ]
        last = [record for _, record in own if record["version"] == count]
        if last and last[0]["hash"] != head[3]:
            problems.append(
                f"version {count} of {subject} is not the head the checkpoint's map holds for it ({head[3]})"
            )
    return problems


def _missing(first: int, last: int, count: int, subject: str, head: MapEntry | None, *, starts: bool) -> str:
    span, verb = (f"version {first}", "is") if first == last else (f"versions {first} to {last}", "are")
    if head is not None and last == count:
        ends = f"the proof ends at version {first - 1}" if first > 1 else "the proof holds none of them"
        return (
            f"{ends}, but the checkpoint's map holds {count} records for {subject} (head {head[3]}): "
            f"{span} {verb} left off"
        )
    if starts:
        return f"the proof starts at version {last + 1}: {span} {verb} missing (the chain must start at version 1)"
    return f"{span} of {subject} {verb} missing from the proof"


def _check_source_signature(record: dict[str, Any], sources: dict[str, list[str]], notes: list[str]) -> list[str]:
    if not record.get("signature"):
        return []
    where, source = _label(record), shown(record["source"])
    envelope_text = record.get("signed_envelope")
    if not envelope_text or not envelope_text.startswith("{"):
        notes.append(
            f"{where}: signed by {source}; the signed envelope holds personal data "
            "and is encrypted (or erased), so the signature cannot be checked here"
        )
        return []
    keys = sources.get(record["source"], [])
    if not any(ed25519_verify(key, record["signature"], envelope_text.encode()) for key in keys):
        return [f"{where}: signature does not verify with any key of source '{source}'"]
    try:
        envelope = json.loads(envelope_text)
    except (ValueError, RecursionError):
        return [f"{where}: the signed envelope is not JSON"]
    key_field = {"order": "order_id", "sku": "sku"}.get(record["stream"], "order_id")
    for field, expected in (
        ("event_id", record["event_id"]),
        (key_field, record["key"]),
        ("source", record["source"]),
    ):
        if not isinstance(envelope, dict) or envelope.get(field) != expected:
            return [f"{where}: the signed envelope's {field} differs from the record"]
    notes.append(f"{where}: signed by source '{source}'")
    return []


# ------------------------------------------------------------------ the command


class _Arguments(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def main(argv: Iterable[str] | None = None) -> int:
    parser = _Arguments(
        prog="python -m orderlog.audit_verify",
        description="Check an orderlog order proof against a signed checkpoint, offline. "
        "Exits 0 verified, 1 verification failed, 2 a file cannot be read.",
    )
    parser.add_argument("proof", help="proof.json written by `orderlog audit proof`")
    parser.add_argument("checkpoint", help="checkpoint.json written by `orderlog audit checkpoint`")
    parser.add_argument(
        "--public-key",
        help="the log's Ed25519 public key (PEM) that you trust; "
        "without it the key embedded in the proof is used and its fingerprint printed",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    for output in (sys.stdout, sys.stderr):
        if hasattr(output, "reconfigure"):
            output.reconfigure(errors="backslashreplace")
    try:
        return _verify_files(args.proof, args.checkpoint, args.public_key)
    except Unreadable as error:
        print(f"audit_verify: cannot read {error}", file=sys.stderr)
        return 2
    except Exception as error:  # a defect of this verifier: one line, never a traceback
        print(f"audit_verify: internal error: {type(error).__name__}: {shown(str(error))} (please report it)")
        return 3


def _verify_files(proof_path: str, checkpoint_path: str, public_key_path: str | None) -> int:
    checkpoint_label, proof_label = shown(checkpoint_path), shown(proof_path)
    checkpoint = check_checkpoint(read_json_file(checkpoint_path), checkpoint_label)
    proof = check_proof(read_json_file(proof_path), proof_label)
    if public_key_path:
        public_key, origin = read_public_key_file(public_key_path), "given"
    else:
        public_key, origin = (
            proof["log_public_key"].encode(),
            "embedded in the proof: compare it with the one you trust",
        )
        try:
            load_public_key(public_key)
        except (ValueError, TypeError):
            raise Unreadable(
                f"{proof_label}: log_public_key: not an Ed25519 public key in PEM form (pass --public-key)"
            ) from None
    invalid = verify_checkpoint(checkpoint, public_key)
    notes: list[str] = []
    if invalid:
        problems = [f"checkpoint {checkpoint_label} is invalid: {invalid[0]}; the proof was not compared with it"]
    else:
        problems, notes = verify_proof(proof, checkpoint)
    for note in notes:
        print(f"note: {note}")
    for problem in problems:
        print(f"FAILED: {problem}")
    if problems:
        return 1
    print(_proven(proof, checkpoint, origin))
    return 0


def _proven(proof: dict[str, Any], checkpoint: dict[str, Any], origin: str) -> str:
    """What a verified proof proves, in one line."""
    subject = f"{shown(proof['stream'])} {shown(proof['key'])}"
    included = (
        f"included in checkpoint tree_size {checkpoint['tree_size']} root {checkpoint['root_hash']}, "
        f"signed by key {checkpoint['key_id']} ({origin})"
    )
    events = proof["events"]
    if "map_root" in checkpoint:
        last = events[-1]["record"]
        complete = f"complete (version 1 to {last['version']}, head {last['hash']})"
        return f"verified {len(events)} events of {subject}: {complete} and {included}"
    return (
        f"verified {len(events)} events of {subject}: {included}; completeness NOT proved: this checkpoint has no "
        "map_root (it was issued before orderlog signed the heads of streams), so later records of the order "
        "could have been left off this proof"
    )


if __name__ == "__main__":
    sys.exit(main())
