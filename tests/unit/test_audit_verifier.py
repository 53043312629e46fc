"""The offline verifier as an auditor runs it (`main`), on evidence built here from the hash
rules alone: what a complete proof prints, that each way of leaving records off or forging
the map fails with a line naming it, and that no file, however malformed or hostile, gets
anything but one line and exit 2 (never a traceback, never raw control characters)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderlog.audit.merkle import Frontier, inclusion_path
from orderlog.audit.stream_map import StreamMap, map_path
from orderlog.audit_verify import (
    GENESIS_HASH,
    checkpoint_payload,
    leaf_hash,
    main,
    map_bucket,
    public_key_id,
    record_hash,
)
from orderlog.sources.signing import public_pem, sign

KEY = Ed25519PrivateKey.generate()
PUBLIC = public_pem(KEY).decode()


def make_record(key: str, version: int, previous: str, **changes: Any) -> dict[str, Any]:
    record = {
        "stream": "order",
        "key": key,
        "version": version,
        "type": "PaymentCaptured" if version > 1 else "OrderSubmitted",
        "event_id": f"e-{key}-{version}",
        "occurred_at": "2026-03-01T10:00:00.000Z",
        "recorded_at": "2026-03-01T10:00:01.000Z",
        "source": "shop",
        "actor": None,
        "correlation_id": None,
        "data": {"amount": 100 * version},
        "signature": None,
        "signed_envelope": None,
        "prev_hash": previous,
        **changes,
    }
    record["hash"] = record_hash(record)
    return record


def evidence(counts: dict[str, int], order: str, *, with_map: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """(proof, checkpoint) for `order` over a log interleaving the orders' records, made the
    way orderlog makes them (but from the rules in audit_verify, not from its writer)."""
    log, last = [], dict.fromkeys(counts, GENESIS_HASH)
    for version in range(1, max(counts.values()) + 1):
        for key, count in counts.items():
            if version <= count:
                log.append(make_record(key, version, last[key]))
                last[key] = log[-1]["hash"]
    frontier, nodes = Frontier.empty(), {}
    for level, index, digest in frontier.extend(leaf_hash(r["hash"]) for r in log):
        nodes[level, index] = digest
    size = len(log)
    checkpoint: dict[str, Any] = {"tree_size": size, "root_hash": frontier.root().hex()}
    heads = StreamMap()
    heads.put(("order", key, counts[key], last[key]) for key in counts)
    if with_map:
        checkpoint["map_root"] = heads.root().hex()
    checkpoint |= {"issued_at": "2026-03-02T00:00:00.000Z", "key_id": public_key_id(PUBLIC)}
    checkpoint["signature"] = sign(KEY, checkpoint_payload(checkpoint))
    events = [
        {
            "record": record,
            "leaf_index": index,
            "inclusion": [h.hex() for h in inclusion_path(index, size, nodes.__getitem__)],
        }
        for index, record in enumerate(log)
        if record["key"] == order
    ]
    proof: dict[str, Any] = {
        "stream": "order",
        "key": order,
        "tree_size": size,
        "root_hash": checkpoint["root_hash"],
        "events": events,
        "records_after_checkpoint": 0,
        "sources": {},
        "log_public_key": PUBLIC,
    }
    if with_map:
        heads.update()
        bucket = map_bucket("order", order)
        proof["map_root"] = checkpoint["map_root"]
        proof["map"] = {
            "bucket": bucket,
            "entries": [list(entry) for entry in heads.entries(bucket)],
            "path": [h.hex() for h in map_path(bucket, heads.node)],
        }
    return proof, checkpoint


def run(
    tmp_path: Path, proof: Any, checkpoint: Any, capsys: pytest.CaptureFixture[str], *, public_key: bool = True
) -> tuple[int, list[str], list[str]]:
    """`python -m orderlog.audit_verify proof.json checkpoint.json [--public-key log.pub.pem]`:
    (exit code, stdout lines, stderr lines); values that are bytes are written as they are."""
    for name, content in (("proof.json", proof), ("checkpoint.json", checkpoint)):
        data = content if isinstance(content, bytes) else json.dumps(content, ensure_ascii=False).encode()
        (tmp_path / name).write_bytes(data)
    (tmp_path / "log.pub.pem").write_text(PUBLIC)
    key = ["--public-key", str(tmp_path / "log.pub.pem")] if public_key else []
    code = main([str(tmp_path / "proof.json"), str(tmp_path / "checkpoint.json"), *key])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


COUNTS = {"SO-1": 5, "SO-2": 4, "SO-3": 2}


# ---------------------------------------------------------------- what a proof proves


def test_a_complete_proof_says_what_it_proved(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proof, checkpoint = evidence(COUNTS, "SO-1")
    code, out, err = run(tmp_path, proof, checkpoint, capsys)
    head = proof["events"][-1]["record"]["hash"]
    assert (code, err) == (0, [])
    assert out == [
        f"verified 5 events of order SO-1: complete (version 1 to 5, head {head}) and included in checkpoint "
        f"tree_size 11 root {checkpoint['root_hash']}, signed by key {checkpoint['key_id']} (given)"
    ]


def test_a_checkpoint_from_before_the_map_proves_inclusion_only_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proof, checkpoint = evidence(COUNTS, "SO-1", with_map=False)
    assert "map_root" not in checkpoint
    code, out, _ = run(tmp_path, proof, checkpoint, capsys)
    assert code == 0
    assert "included in checkpoint tree_size 11" in out[-1]
    assert "completeness NOT proved: this checkpoint has no map_root" in out[-1]
    shortened = copy.deepcopy(proof)
    del shortened["events"][-1]  # the attack the map exists for: undetectable without it, and said so
    code, out, _ = run(tmp_path, shortened, checkpoint, capsys)
    assert code == 0 and "verified 4 events" in out[-1] and "completeness NOT proved" in out[-1]


def drop(index: int) -> Any:
    def change(proof: dict[str, Any], _other: dict[str, Any]) -> None:
        del proof["events"][index]

    return change


def swap_events(proof: dict[str, Any], _other: dict[str, Any]) -> None:
    events = proof["events"]
    events[1], events[2] = events[2], events[1]


def another_orders_record(proof: dict[str, Any], other: dict[str, Any]) -> None:
    proof["events"][2] = other["events"][2]


def forged_count(proof: dict[str, Any], _other: dict[str, Any]) -> None:
    for entry in proof["map"]["entries"]:
        if entry[1] == "SO-1":
            entry[2] = 4  # agrees with a proof that left the last record off
    del proof["events"][-1]


def forged_head(proof: dict[str, Any], _other: dict[str, Any]) -> None:
    for entry in proof["map"]["entries"]:
        if entry[1] == "SO-1":
            entry[3] = proof["events"][3]["record"]["hash"]


def wrong_bucket(proof: dict[str, Any], other: dict[str, Any]) -> None:
    proof["map"] = other["map"]  # a valid map path, for another stream's bucket


def no_map(proof: dict[str, Any], _other: dict[str, Any]) -> None:
    del proof["map"]


def repeated(proof: dict[str, Any], _other: dict[str, Any]) -> None:
    proof["events"].insert(3, copy.deepcopy(proof["events"][2]))


def bent_path(proof: dict[str, Any], _other: dict[str, Any]) -> None:
    proof["map"]["path"][7] = "00" * 32


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (drop(-1), "the proof ends at version 4, but the checkpoint's map holds 5 records for order SO-1 "
         "(head {head}): version 5 is left off"),
        (drop(0), "the proof starts at version 2: version 1 is missing (the chain must start at version 1)"),
        (drop(2), "version 3 of order SO-1 is missing from the proof"),
        (swap_events, "events[2] (order SO-1 version 2) comes after version 3 (events[1]): the records are out of "
         "order or repeated"),
        (another_orders_record, "events[2] (order SO-2 version 3) is a record of order SO-2, not of order SO-1"),
        (forged_count, "the map proof does not lead to the checkpoint's map_root: the entries of order SO-1's bucket "
         "or their path were altered"),
        (forged_head, "the map proof does not lead to the checkpoint's map_root: the entries of order SO-1's bucket "
         "or their path were altered"),
        (wrong_bucket, "the map proof is for bucket {other_bucket}, but order SO-1 belongs in bucket {bucket}"),
        (no_map, "the checkpoint signs a map of stream heads (map_root), but the proof holds no map proof, so it "
         "cannot show that these are all the records of order SO-1"),
        (repeated, "events[3] (order SO-1 version 3) comes after version 3 (events[2]): the records are out of order "
         "or repeated"),
        (bent_path, "the map proof does not lead to the checkpoint's map_root: the entries of order SO-1's bucket "
         "or their path were altered"),
    ],
    ids=["last", "first", "middle", "reorder", "other-order", "forged-count", "forged-head", "wrong-bucket",
         "no-map", "repeated", "bent-path"],
)  # fmt: skip
def test_every_way_of_leaving_records_off_fails_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Any, expected: str
) -> None:
    proof, checkpoint = evidence(COUNTS, "SO-1")
    other, _ = evidence(COUNTS, "SO-2")
    change(proof, other)
    code, out, err = run(tmp_path, proof, checkpoint, capsys)
    line = "FAILED: " + expected.format(
        head=proof["map"]["entries"][0][3] if "map" in proof else "",
        bucket=map_bucket("order", "SO-1"),
        other_bucket=map_bucket("order", "SO-2"),
    )
    assert (code, err) == (1, [])
    assert line in out, out


def test_a_checkpoint_whose_map_root_was_altered_is_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proof, checkpoint = evidence(COUNTS, "SO-1")
    altered = {**checkpoint, "map_root": "ab" * 32}
    proof["map_root"] = altered["map_root"]
    code, out, _ = run(tmp_path, proof, altered, capsys)
    assert code == 1
    assert out == [
        f"FAILED: checkpoint {tmp_path / 'checkpoint.json'} is invalid: its signature does not verify with key "
        f"{checkpoint['key_id']}: it was altered after signing, or never signed; the proof was not compared with it"
    ]
    stripped = {k: v for k, v in checkpoint.items() if k != "map_root"}  # no downgrade to "inclusion only"
    assert run(tmp_path, proof, stripped, capsys)[0] == 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    counts=st.lists(st.integers(1, 7), min_size=1, max_size=4),
    data=st.data(),
)
def test_any_single_record_removed_from_a_proof_is_caught(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], counts: list[int], data: st.DataObject
) -> None:
    orders = {f"SO-{n}": count for n, count in enumerate(counts)}
    order = data.draw(st.sampled_from(sorted(orders)))
    proof, checkpoint = evidence(orders, order)
    assert run(tmp_path, proof, checkpoint, capsys)[0] == 0
    removed = data.draw(st.integers(0, orders[order] - 1))
    del proof["events"][removed]
    code, out, _ = run(tmp_path, proof, checkpoint, capsys)
    assert code == 1 and out and all(line.startswith("FAILED: ") for line in out)


# ---------------------------------------------------------------- files that are not a proof or a checkpoint


def mutate(path: list[Any], value: Any) -> Any:
    def change(document: dict[str, Any]) -> Any:
        target = document
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        return document

    return change


MALFORMED_PROOFS: list[tuple[str, Any, str]] = [
    ("empty", b"", "proof.json: is empty"),
    ("binary", bytes(range(256)), "proof.json: not UTF-8 text (byte 0x80 at offset 128)"),
    ("invalid-utf8", b'{"key": "\xc3\x28"}', "proof.json: not UTF-8 text (byte 0xc3 at offset 9)"),
    ("not-json", b"{stream: order}", "proof.json: not JSON: Expecting property name enclosed in double quotes"),
    ("array", [1, 2], "proof.json: expected an object, got an array"),
    (
        "null-record",
        mutate(["events", 3, "record"], None),
        "proof.json: events[3].record: expected an object, got null",
    ),
    ("missing", lambda d: {k: v for k, v in d.items() if k != "events"}, 'proof.json: missing member "events"'),
    ("size-string", mutate(["tree_size"], "11"), 'proof.json: tree_size: expected a whole number, got a string ("11")'),
    ("size-bool", mutate(["tree_size"], True), "proof.json: tree_size: expected a whole number, got true"),
    ("size-negative", mutate(["tree_size"], -1), "proof.json: tree_size: -1 is out of range (0 to 9007199254740991)"),
    ("size-float", mutate(["tree_size"], 1.5), "proof.json: tree_size: 1.5 is not a whole number"),
    ("size-huge", mutate(["tree_size"], 10**30), "proof.json: tree_size: the number of 31 digits is beyond 2**53-1"),
    ("digits", b'{"tree_size": ' + b"7" * 5000 + b"}", "proof.json: a number of 5000 digits is beyond 2**53-1"),
    ("not-hex", mutate(["root_hash"], "zz" * 32), "proof.json: root_hash: expected 64 lowercase hex digits"),
    ("path-not-hex", mutate(["events", 0, "inclusion", 0], "0x12"), "proof.json: events[0].inclusion[0]: expected 64"),
    ("map-path-short", mutate(["map", "path"], []), "proof.json: map.path: expected 16 items, got 0"),
    (
        "entry-shape",
        mutate(["map", "entries", 0], ["order"]),
        "proof.json: map.entries[0]: expected an array of 4 items",
    ),
    ("bucket", mutate(["map", "bucket"], 70000), "proof.json: map.bucket: 70000 is out of range (0 to 65535)"),
    (
        "version",
        mutate(["events", 1, "record", "version"], "2"),
        "proof.json: events[1].record.version: expected a whole",
    ),
    ("deep", b"[" * 100_000 + b"]" * 100_000, "proof.json: JSON nested too deeply"),
    ("deep-in-record", mutate(["events", 0, "record", "data"], json.loads("[" * 40 + "]" * 40)), "nested more than 32"),
    ("surrogate", b'{"key": "\\ud800"}', "proof.json: key: a string holds a lone surrogate (\\ud800)"),
    ("duplicate", b'{"key": "a", "key": "b"}', 'proof.json: an object holds member "key" twice'),
    ("nan", b'{"tree_size": NaN}', "proof.json: NaN is not a JSON number"),
    ("unknown", mutate(["surprise"], 1), 'proof.json: unexpected member "surprise"'),
    ("non-ascii-name", mutate(["events", 0, "record", "data", "é"], 1), 'member name "é" is not ASCII'),
]


MALFORMED_CHECKPOINTS: list[tuple[str, Any, str]] = [
    ("negative", mutate(["tree_size"], -5), "tree_size: -5 is out of range (0 to 9007199254740991)"),
    ("float", mutate(["tree_size"], 11.0), "tree_size: 11.0 is not a whole number"),
    ("string", mutate(["tree_size"], "eleven"), 'tree_size: expected a whole number, got a string ("eleven")'),
    ("huge", mutate(["tree_size"], 10**30), "tree_size: the number of 31 digits is beyond 2**53-1"),
    ("bool", mutate(["tree_size"], False), "tree_size: expected a whole number, got false"),
    ("null", mutate(["tree_size"], None), "tree_size: expected a whole number, got null"),
    ("key-id", mutate(["key_id"], "not-a-key-id"), "key_id: expected 16 lowercase hex digits"),
    ("signature", mutate(["signature"], "!!"), "signature: expected an Ed25519 signature in standard base64"),
    ("map-root", mutate(["map_root"], 42), "map_root: expected 64 lowercase hex digits, got the number 42"),
    ("missing", lambda d: {k: v for k, v in d.items() if k != "root_hash"}, 'missing member "root_hash"'),
    ("object", "a checkpoint", 'expected an object, got a string ("a checkpoint")'),
]


MALFORMED = [("proof", *case) for case in MALFORMED_PROOFS] + [("checkpoint", *case) for case in MALFORMED_CHECKPOINTS]


@pytest.mark.parametrize(
    ("which", "content", "expected"),
    [(which, content, expected) for which, _, content, expected in MALFORMED],
    ids=[f"{which}-{name}" for which, name, _, _ in MALFORMED],
)
def test_a_file_that_cannot_be_read_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], which: str, content: Any, expected: str
) -> None:
    files = dict(zip(("proof", "checkpoint"), evidence(COUNTS, "SO-1"), strict=True))
    files[which] = content(files[which]) if callable(content) else content
    code, out, err = run(tmp_path, files["proof"], files["checkpoint"], capsys)
    assert (code, out, len(err)) == (2, [], 1), err
    assert err[0].startswith(f"audit_verify: cannot read {tmp_path / which}.json: ")
    assert expected in err[0]


@pytest.mark.parametrize("which", ["proof", "checkpoint", "key"])
@pytest.mark.parametrize("problem", ["missing", "directory"])
def test_a_missing_file_or_a_directory_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], which: str, problem: str
) -> None:
    proof, checkpoint = evidence(COUNTS, "SO-1")
    for name, content in (("proof.json", proof), ("checkpoint.json", checkpoint)):
        (tmp_path / name).write_text(json.dumps(content))
    (tmp_path / "log.pub.pem").write_text(PUBLIC)
    paths = {
        "proof": tmp_path / "proof.json",
        "checkpoint": tmp_path / "checkpoint.json",
        "key": tmp_path / "log.pub.pem",
    }
    paths[which].unlink()
    if problem == "directory":
        paths[which].mkdir()
    code = main([str(paths["proof"]), str(paths["checkpoint"]), "--public-key", str(paths["key"])])
    out, err = capsys.readouterr()
    said = "is a directory, not a file" if problem == "directory" else "no such file"
    assert (code, out, err) == (2, "", f"audit_verify: cannot read {paths[which]}: {said}\n")


def test_a_key_that_is_not_an_ed25519_key_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proof, checkpoint = evidence(COUNTS, "SO-1")
    (tmp_path / "proof.json").write_text(json.dumps({**proof, "log_public_key": "not a key"}))
    (tmp_path / "checkpoint.json").write_text(json.dumps(checkpoint))
    assert main([str(tmp_path / "proof.json"), str(tmp_path / "checkpoint.json")]) == 2
    _, err = capsys.readouterr()
    assert err.strip().endswith("proof.json: log_public_key: not an Ed25519 public key in PEM form (pass --public-key)")


# ---------------------------------------------------------------- hostile content


HOSTILE = "SO-1\u202e\u200b\x1b[2J\u2028\\"


def test_what_the_files_say_is_printed_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proof, checkpoint = evidence(COUNTS, "SO-1")
    proof["key"] = HOSTILE
    proof["events"][0]["record"]["source"] = HOSTILE
    proof["events"][0]["record"]["signature"] = "c2ln"
    code, out, _ = run(tmp_path, proof, checkpoint, capsys)
    assert code == 1
    text = "\n".join(out)
    assert "order SO-1\\u202e\\u200b\\u001b[2J\\u2028\\\\" in text
    assert not any(ch in text for ch in "\u202e\u200b\x1b\u2028")
    assert all(line.isprintable() for line in out)

    code, _, err = run(tmp_path, {**evidence(COUNTS, "SO-1")[0], HOSTILE: 1}, checkpoint, capsys)
    assert code == 2 and all(line.isprintable() for line in err) and "\\u202e" in err[0]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), value=JSON_VALUES, checkpoint_side=st.booleans())
def test_any_member_replaced_by_any_value_never_escapes_the_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: st.DataObject, value: Any, checkpoint_side: bool
) -> None:
    proof, checkpoint = evidence({"SO-1": 3, "SO-2": 2}, "SO-1")
    document = checkpoint if checkpoint_side else proof
    target, path = document, []
    while isinstance(target, dict | list) and target and data.draw(st.booleans()):
        step = data.draw(st.sampled_from(sorted(target) if isinstance(target, dict) else range(len(target))))
        if not isinstance(target[step], dict | list):
            break
        target, path = target[step], [*path, step]
    if isinstance(target, dict | list) and target:
        step = data.draw(st.sampled_from(sorted(target) if isinstance(target, dict) else range(len(target))))
        target[step] = value
    code, out, err = run(tmp_path, proof, checkpoint, capsys)
    assert code in (0, 1, 2), (path, out, err)
    assert code != 2 or (out == [] and len(err) == 1)
    assert all(line.isprintable() for line in out + err)
