"""Checkpoints, verification and proofs as an operator and an auditor run them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_cli import orderlog

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
    assert set(checkpoint) == {"tree_size", "root_hash", "issued_at", "key_id", "signature"}
    assert json.loads(made.stdout) == checkpoint

    verified = signed("audit", "verify", "--checkpoint", "cp.json", cwd=store)
    assert verified.returncode == 0, verified.stdout
    first = verified.stdout.splitlines()[0]
    assert re.fullmatch(rf"verified {checkpoint['tree_size']} events in 150 orders, root [0-9a-f]{{64}}", first)
    assert "checkpoint cp.json (tree_size" in verified.stdout and "signature valid" in verified.stdout

    proven = signed("audit", "proof", ORDER, "--checkpoint", "cp.json", "--out", "proof.json", cwd=store)
    assert proven.returncode == 0, proven.stderr
    checked = offline("proof.json", "cp.json", "--public-key", "log.pub.pem", cwd=store)
    assert checked.returncode == 0, checked.stdout
    assert (
        checked.stdout.strip()
        .splitlines()[-1]
        .startswith(f"verified {len(json.loads((store / 'proof.json').read_text())['events'])} events of order {ORDER}")
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
    from tests.e2e.test_cli import assert_one_line_error

    assert_one_line_error(orderlog("audit", "checkpoint", cwd=store), "no signing key")
    assert_one_line_error(signed("audit", "verify", "--checkpoint", "missing.json", cwd=store), "does not exist")
    (store / "bad.json").write_text('{"tree_size": 1}')
    assert_one_line_error(signed("audit", "proof", ORDER, "--checkpoint", "bad.json", cwd=store), "must hold exactly")
    signed("audit", "checkpoint", "--out", "cp.json", cwd=store)
    assert_one_line_error(signed("audit", "proof", "SO-none", "--checkpoint", "cp.json", cwd=store), "not found")
