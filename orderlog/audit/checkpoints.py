"""Checkpoints: the log's Merkle root and the root of its map of stream heads at a size,
signed with the instance's Ed25519 key.

A checkpoint is meant to leave the system (mailed, published, handed to an auditor): from
then on, any change to the first `tree_size` records, even one that recomputes every
hash, changes that root and is caught by `audit verify --checkpoint` (a consistency
proof), and any order's records can be proven included and complete (`audit proof`): the
map root fixes each stream's record count and last hash at that size.

Checkpoints issued before the map existed have no `map_root`; they stay loadable and
verifiable, and their proofs show inclusion only.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orderlog.audit import AuditError
from orderlog.audit.log import read_log
from orderlog.audit.persisted_map import PersistedMap, head_changes
from orderlog.audit.tree import Leaf, PersistedTree
from orderlog.audit_verify import (
    Unreadable,
    check_checkpoint,
    checkpoint_payload,
    public_key_id,
    read_json_file,
    shown,
)
from orderlog.domain.instants import format_instant
from orderlog.sources.signing import public_pem, sign

if TYPE_CHECKING:
    from orderlog.application import OrderLog

FIELDS = ("tree_size", "root_hash", "issued_at", "key_id", "signature")
APPEND_CHUNK = 50_000


def extend_tree(app: OrderLog) -> PersistedTree:
    """Adds every record stored since the last checkpoint to the persisted tree.

    Refuses to cover a record whose content no longer matches its own hash: a checkpoint
    signs what the log holds, so it must not sign over damage.
    """
    tree = PersistedTree(app.database)
    pending: list[Leaf] = []
    for entry in read_log(app.log_reader, after=tree.last_position()):
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


def extend_map(app: OrderLog, tree: PersistedTree, size: int) -> bytes:
    """Brings the map of stream heads to tree size `size` from the tree's leaves since the
    map was last built (all of them the first time) and returns its root.

    Refuses, like the tree, to sign over damage: a stream whose versions skip or repeat.
    """
    persisted = PersistedMap(app.database)
    since = persisted.size()
    changes = head_changes(tree.leaves_between(since or 0, size))
    return persisted.advance(changes, size)


def issue_checkpoint(app: OrderLog, signing_key: Ed25519PrivateKey) -> dict[str, Any]:
    tree = extend_tree(app)
    size = tree.size()
    checkpoint: dict[str, Any] = {
        "tree_size": size,
        "root_hash": tree.root(size).hex(),
        "map_root": extend_map(app, tree, size).hex(),
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
        cursor.execute(
            app.database.sql(
                "INSERT INTO {checkpoint_maps} (signature, map_root) VALUES (?, ?) ON CONFLICT (signature) DO NOTHING"
            ),
            (checkpoint["signature"], checkpoint["map_root"]),
        )
    return checkpoint


def stored_checkpoints(app: OrderLog, *, latest: int | None = None) -> list[dict[str, Any]]:
    """Every checkpoint the store kept (or the `latest` few), oldest first, as issued
    (`map_root` for those that signed one); values as stored, for verification to check
    like any checkpoint file. A page showing the latest does not read years of them."""
    columns = ", ".join(f"c.{name}" for name in FIELDS)
    newest_first = "" if latest is None else f" DESC LIMIT {int(latest)}"
    with app.database.transaction(commit=False) as cursor:
        rows = cursor.execute(
            app.database.sql(
                f"SELECT {columns}, m.map_root FROM {{checkpoints}} c "
                f"LEFT JOIN {{checkpoint_maps}} m ON m.signature = c.signature ORDER BY c.tree_size{newest_first}"
            )
        ).fetchall()
    checkpoints = []
    for row in rows if latest is None else reversed(rows):
        checkpoint = dict(zip(FIELDS, row[:-1], strict=True))
        if row[-1] is not None:
            checkpoint["map_root"] = row[-1]
        checkpoints.append(checkpoint)
    return checkpoints


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint file, checked for shape (not yet for its signature): one line naming
    what is wrong otherwise."""
    label = f"checkpoint file {shown(str(path))}"
    try:
        return check_checkpoint(read_json_file(str(path), label), label)
    except Unreadable as error:
        raise AuditError(str(error)) from None


def write_checkpoint(checkpoint: dict[str, Any], path: Path | None) -> str:
    text = json.dumps(checkpoint, indent=2) + "\n"
    if path is not None:
        path.write_text(text, encoding="utf-8")
    return text
