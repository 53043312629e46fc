"""Checkpoints: the log's Merkle root at a size, signed with the instance's Ed25519 key.

A checkpoint is meant to leave the system (mailed, published, handed to an auditor): from
then on, any change to the first `tree_size` records, even one that recomputes every
hash, changes that root and is caught by `audit verify --checkpoint` (a consistency
proof), and any order's records can be proven included (`audit proof`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orderlog.application import OrderLog
from orderlog.audit import AuditError
from orderlog.audit.log import read_log
from orderlog.audit.tree import Leaf, PersistedTree
from orderlog.audit_verify import checkpoint_payload, public_key_id
from orderlog.domain.instants import format_instant
from orderlog.signing import public_pem, sign

FIELDS = ("tree_size", "root_hash", "issued_at", "key_id", "signature")
APPEND_CHUNK = 50_000


def extend_tree(app: OrderLog) -> PersistedTree:
    """Adds every record stored since the last checkpoint to the persisted tree.

    Refuses to cover a record whose content no longer matches its own hash: a checkpoint
    signs what the log holds, so it must not sign over damage.
    """
    tree = PersistedTree(app.database)
    pending: list[Leaf] = []
    for entry in read_log(app.database, after=tree.last_position()):
        if entry.problem or entry.record is None or entry.stored_hash != entry.recomputed:
            raise AuditError(f"{entry.label} does not match its own hash; run `orderlog audit verify`")
        record = entry.record
        pending.append((entry.position, record["stream"], record["key"], entry.version, entry.recomputed))
        if len(pending) >= APPEND_CHUNK:
            tree.append(pending)
            pending = []
    if pending:
        tree.append(pending)
    return tree


def issue_checkpoint(app: OrderLog, signing_key: Ed25519PrivateKey) -> dict[str, Any]:
    tree = extend_tree(app)
    size = tree.size()
    checkpoint: dict[str, Any] = {
        "tree_size": size,
        "root_hash": tree.root(size).hex(),
        "issued_at": format_instant(datetime.now(UTC)),
        "key_id": public_key_id(public_pem(signing_key)),
    }
    checkpoint["signature"] = sign(signing_key, checkpoint_payload(checkpoint))
    with app.database.transaction() as cursor:
        cursor.execute(
            app.database.sql(
                "INSERT INTO {checkpoints} (tree_size, root_hash, issued_at, key_id, signature) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (tree_size) DO NOTHING"
            ),
            [checkpoint[name] for name in FIELDS],
        )
    return checkpoint


def stored_checkpoints(app: OrderLog) -> list[dict[str, Any]]:
    with app.database.transaction(commit=False) as cursor:
        rows = cursor.execute(
            app.database.sql(f"SELECT {', '.join(FIELDS)} FROM {{checkpoints}} ORDER BY tree_size")
        ).fetchall()
    return [dict(zip(FIELDS, (int(row[0]), *row[1:]), strict=True)) for row in rows]


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint file, checked for shape (not yet for its signature)."""
    try:
        checkpoint = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AuditError(f"checkpoint file {path} does not exist") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise AuditError(f"checkpoint file {path} is not JSON: {error}") from None
    if not isinstance(checkpoint, dict) or set(checkpoint) != set(FIELDS):
        raise AuditError(f"checkpoint file {path} must hold exactly {', '.join(FIELDS)}")
    if not isinstance(checkpoint["tree_size"], int) or checkpoint["tree_size"] < 0:
        raise AuditError(f"checkpoint file {path}: tree_size must be a whole number")
    return checkpoint


def write_checkpoint(checkpoint: dict[str, Any], path: Path | None) -> str:
    text = json.dumps(checkpoint, indent=2) + "\n"
    if path is not None:
        path.write_text(text, encoding="utf-8")
    return text
