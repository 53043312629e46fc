"""Checkpoints, verification and proofs as an operator and an auditor run them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import builders as b
from tests.e2e.test_cli import assert_one_line_error, orderlog

ORDER = "SO-3-000004"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    traffic = tmp_path / "traffic.jsonl"
    orderlog("simulate", "--orders", "150", "--seed", "3", "--out", str(traffic), cwd=tmp_path)
    orderlog("publish", str(traffic), "--rejects", "rejects.jsonl", cwd=tmp_path)
    result = orderlog("keys", "new-signing", "--out", "log.pem", cwd=tmp_path)
    assert result.returncode == 0 and "log.pub.pem" in result.stdout
    assert (tmp_path / "log.pem").stat().st_mode & 0o777 == 0o600
    return tmp_path


def signed(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return orderlog(*args, cwd=cwd, env={"ORDERLOG_SIGNING_KEY": "log.pem"})


def offline(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return orderlog(*args, cwd=cwd, module="orderlog.audit_verify")


def test_checkpoint_verify_and_proof_round_trip(store: Path) -> None:
    made = signed("audit", "checkpoint", "--out", "cp.json", cwd=store)
    assert made.returncode == 0, made.stderr
    checkpoint = json.loads((store / "cp.json").read_text())
    assert set(checkpoint) == {"tree_size", "root_hash", "map_root", "issued_at", "key_id", "signature"}
    assert json.loads(made.stdout) == checkpoint

    verified = signed("audit", "verify", "--checkpoint", "cp.json", cwd=store)
    assert verified.returncode == 0, verified.stdout
    first = verified.stdout.splitlines()[0]
    assert re.fullmatch(rf"verified {checkpoint['tree_size']} events in 150 orders, root [0-9a-f]{{64}}", first)
    assert f"checkpoint cp.json (tree_size {checkpoint['tree_size']}): signature valid; the log extends it" in (
        verified.stdout
    )
    assert "map of stream heads verified" in verified.stdout

    proven = signed("audit", "proof", ORDER, "--checkpoint", "cp.json", "--out", "proof.json", cwd=store)
    assert proven.returncode == 0, proven.stderr
    checked = offline("proof.json", "cp.json", "--public-key", "log.pub.pem", cwd=store)
    assert checked.returncode == 0, checked.stdout
    last = json.loads((store / "proof.json").read_text())["events"][-1]["record"]
    assert checked.stdout.strip().splitlines()[-1] == (
        f"verified {last['version']} events of order {ORDER}: complete (version 1 to {last['version']}, head "
        f"{last['hash']}) and included in checkpoint tree_size {checkpoint['tree_size']} root "
        f"{checkpoint['root_hash']}, signed by key {checkpoint['key_id']} (given)"
    )


def test_verify_json_output(store: Path) -> None:
    result = json.loads(orderlog("audit", "verify", "--json", cwd=store).stdout)
    assert result["ok"] is True and result["orders"] == 150 and result["divergences"] == []


def test_a_tampered_store_fails_verify_naming_where(store: Path) -> None:
    import sqlite3

    connection = sqlite3.connect(store / "orderlog.db")
    rowid, state = connection.execute("SELECT rowid, state FROM stored_events LIMIT 1 OFFSET 7").fetchone()
    connection.execute(
        "UPDATE stored_events SET state = ? WHERE rowid = ?", (state.replace(b'"source":"', b'"source":"x', 1), rowid)
    )
    connection.commit()
    connection.close()
    result = orderlog("audit", "verify", cwd=store)
    assert result.returncode == 1
    assert result.stdout.startswith("FAILED: ") and f"(store position {rowid})" in result.stdout.splitlines()[0]


def test_every_upstream_proof_element_matters(store: Path) -> None:
    signed("audit", "checkpoint", "--out", "cp.json", cwd=store)
    signed("audit", "proof", ORDER, "--checkpoint", "cp.json", "--out", "proof.json", cwd=store)
    proof = json.loads((store / "proof.json").read_text())

    tampered = json.loads(json.dumps(proof))
    tampered["events"][0]["record"]["data"]["channel"] = "forged"
    (store / "tampered.json").write_text(json.dumps(tampered))
    assert offline("tampered.json", "cp.json", "--public-key", "log.pub.pem", cwd=store).returncode == 1

    wrong_path = json.loads(json.dumps(proof))
    wrong_path["events"][-1]["inclusion"][0] = "00" * 32
    (store / "wrong-path.json").write_text(json.dumps(wrong_path))
    assert offline("wrong-path.json", "cp.json", "--public-key", "log.pub.pem", cwd=store).returncode == 1

    checkpoint = json.loads((store / "cp.json").read_text())
    (store / "wrong-root.json").write_text(json.dumps({**checkpoint, "root_hash": "ab" * 32}))
    assert offline("proof.json", "wrong-root.json", "--public-key", "log.pub.pem", cwd=store).returncode == 1

    orderlog("keys", "new-signing", "--out", "forger.pem", cwd=store)
    forged = orderlog("audit", "checkpoint", "--signing-key", "forger.pem", cwd=store).stdout
    (store / "forged.json").write_text(forged)
    result = offline("proof.json", "forged.json", "--public-key", "log.pub.pem", cwd=store)
    assert result.returncode == 1 and "key" in result.stdout


def test_the_offline_verifier_needs_nothing_but_itself_and_cryptography(store: Path, tmp_path: Path) -> None:
    signed("audit", "checkpoint", "--out", "cp.json", cwd=store)
    signed("audit", "proof", ORDER, "--checkpoint", "cp.json", "--out", "proof.json", cwd=store)
    alone = tmp_path / "auditor"
    alone.mkdir()
    shutil.copy(Path(__file__).parents[2] / "orderlog" / "audit_verify.py", alone / "verify.py")
    for name in ("proof.json", "cp.json", "log.pub.pem"):
        shutil.copy(store / name, alone / name)
    result = subprocess.run(
        [sys.executable, "-I", "verify.py", "proof.json", "cp.json", "--public-key", "log.pub.pem"],
        cwd=alone,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    probe = (
        "import sys, orderlog.audit_verify as v; v.ed25519_verify(b'', '', b''); "
        "print('\\n'.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    outside = {m for m in loaded if m not in sys.stdlib_module_names and not m.startswith("_")}
    assert outside <= {"orderlog", "cryptography", "cffi"}, outside


def test_audit_mistakes_are_one_line_errors(store: Path) -> None:
    assert_one_line_error(orderlog("audit", "checkpoint", cwd=store), "no signing key")
    assert_one_line_error(
        signed("audit", "verify", "--checkpoint", "missing.json", cwd=store),
        "checkpoint file missing.json: no such file",
    )
    (store / "bad.json").write_text('{"tree_size": 1}')
    assert_one_line_error(
        signed("audit", "proof", ORDER, "--checkpoint", "bad.json", cwd=store),
        'checkpoint file bad.json: missing member "root_hash"',
    )
    signed("audit", "checkpoint", "--out", "cp.json", cwd=store)
    assert_one_line_error(signed("audit", "proof", "SO-none", "--checkpoint", "cp.json", cwd=store), "not found")


@pytest.mark.parametrize(
    ("tree_size", "expected"),
    [
        (-1, "tree_size: -1 is out of range (0 to 9007199254740991)"),
        (1.5, "tree_size: 1.5 is not a whole number"),
        ("580", 'tree_size: expected a whole number, got a string ("580")'),
        (10**30, "tree_size: the number of 31 digits is beyond 2**53-1"),
        (True, "tree_size: expected a whole number, got true"),
        (None, "tree_size: expected a whole number, got null"),
    ],
)
def test_an_absurd_checkpoint_is_a_one_line_error_for_every_command(
    store: Path, tree_size: object, expected: str
) -> None:
    signed("audit", "checkpoint", "--out", "cp.json", cwd=store)
    checkpoint = json.loads((store / "cp.json").read_text())
    (store / "absurd.json").write_text(json.dumps({**checkpoint, "tree_size": tree_size}))
    for command in (
        ("audit", "verify", "--checkpoint", "absurd.json"),
        ("audit", "proof", ORDER, "--checkpoint", "absurd.json"),
    ):
        result = signed(*command, cwd=store)
        assert result.returncode == 1, result.stderr
        assert_one_line_error(result, f"orderlog: error: checkpoint file absurd.json: {expected}")


def test_a_checkpoint_bigger_than_the_log_is_invalid_not_a_removal(store: Path) -> None:
    signed("audit", "checkpoint", "--out", "cp.json", cwd=store)
    checkpoint = json.loads((store / "cp.json").read_text())
    (store / "big.json").write_text(json.dumps({**checkpoint, "tree_size": checkpoint["tree_size"] * 10}))
    verified = signed("audit", "verify", "--checkpoint", "big.json", cwd=store)
    assert verified.returncode == 1
    assert verified.stdout.splitlines()[0] == (
        f"FAILED: checkpoint big.json is invalid: its signature does not verify with key {checkpoint['key_id']}: "
        "it was altered after signing, or never signed"
    )
    assert "removed" not in verified.stdout and "does not extend" not in verified.stdout
    unsigned = orderlog("audit", "verify", "--checkpoint", "big.json", cwd=store)  # no key: nothing to check with
    assert unsigned.returncode == 1
    assert "whose signature was not checked (no public key given)" in unsigned.stdout.splitlines()[0]
    assert "signature not checked (no public key given)" in unsigned.stdout
    proven = signed("audit", "proof", ORDER, "--checkpoint", "big.json", cwd=store)
    assert_one_line_error(proven, "orderlog: error: this checkpoint is invalid: its signature does not verify")


def test_a_proof_for_an_order_not_in_the_store_says_so(store: Path, tmp_path: Path) -> None:
    signed("audit", "checkpoint", "--out", "cp.json", cwd=store)
    assert_one_line_error(
        signed("audit", "proof", "SO-404", "--checkpoint", "cp.json", cwd=store),
        "orderlog: error: order SO-404 not found in orderlog.db",
    )
    elsewhere = tmp_path / "elsewhere"  # another store, whose checkpoint this one never issued
    elsewhere.mkdir()
    (elsewhere / "one.jsonl").write_text(b.line(b.submitted("SO-ELSEWHERE")) + "\n")
    orderlog("publish", "one.jsonl", cwd=elsewhere)
    shutil.copy(store / "log.pem", elsewhere / "log.pem")
    signed("audit", "checkpoint", "--out", "theirs.json", cwd=elsewhere)
    shutil.copy(elsewhere / "theirs.json", store / "theirs.json")
    assert_one_line_error(
        signed("audit", "proof", "SO-ELSEWHERE", "--checkpoint", "theirs.json", cwd=store),
        "orderlog: error: order SO-ELSEWHERE not found in orderlog.db",
    )
    assert_one_line_error(
        signed("audit", "proof", ORDER, "--checkpoint", "theirs.json", cwd=store),
        "orderlog: error: this store's first 1 records do not hash to the checkpoint's root_hash: was it issued by "
        "this store?",
    )
    empty = tmp_path / "empty"  # a store that holds nothing yet
    empty.mkdir()
    (empty / "nothing.jsonl").write_text("")
    orderlog("publish", "nothing.jsonl", cwd=empty)
    for name in ("cp.json", "log.pem"):
        shutil.copy(store / name, empty / name)
    assert_one_line_error(
        signed("audit", "proof", ORDER, "--checkpoint", "cp.json", cwd=empty),
        f"orderlog: error: order {ORDER} not found in orderlog.db",
    )


def test_the_offline_verifier_never_prints_a_traceback(store: Path) -> None:
    signed("audit", "checkpoint", "--out", "cp.json", cwd=store)
    signed("audit", "proof", ORDER, "--checkpoint", "cp.json", "--out", "proof.json", cwd=store)
    proof = json.loads((store / "proof.json").read_text())
    proof["events"][1]["record"] = None
    cases = {
        "empty.json": b"",
        "garbage.json": bytes(range(255, 0, -1)),
        "array.json": b"[]",
        "null-record.json": json.dumps(proof).encode(),
        "deep.json": b"[" * 100_000 + b"]" * 100_000,
        "surrogate.json": b'{"stream": "\\udfff"}',
    }
    for name, content in cases.items():
        (store / name).write_bytes(content)
    (store / "a-directory.json").mkdir()
    for name in [*cases, "a-directory.json", "missing.json"]:
        result = offline(name, "cp.json", "--public-key", "log.pub.pem", cwd=store)
        assert (result.returncode, result.stdout) == (2, ""), (name, result.stdout, result.stderr)
        assert_one_line_error(result, f"audit_verify: cannot read {name}: ")
    result = offline("proof.json", "proof.json", cwd=store)  # a proof given as the checkpoint
    assert_one_line_error(result, 'audit_verify: cannot read proof.json: missing member "issued_at"')
    assert result.returncode == 2
