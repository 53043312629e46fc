"""`audit proof`: an order's records with an inclusion proof of each against a checkpoint.

The proof file is self-contained: the records exactly as stored (personal parts as
ciphertext), each with its leaf index and RFC 9162 inclusion path, the public keys of the
sources that signed any of them, and the log's public key. `python -m orderlog.audit_verify
proof.json checkpoint.json` checks it with nothing but the standard library and
`cryptography`: no access to the store, no trust in the running system.
"""

from __future__ import annotations

from typing import Any

from orderlog.application import OrderLog
from orderlog.audit import AuditError
from orderlog.audit.tree import PersistedTree
from orderlog.domain.order import Order
from orderlog.domain.source import Source


def order_proof(app: OrderLog, order_id: str, checkpoint: dict[str, Any], log_public_key: str) -> dict[str, Any]:
    tree = PersistedTree(app.database)
    size = checkpoint["tree_size"]
    if tree.size() < size:
        raise AuditError(
            f"the checkpoint covers {size} records but this store's tree holds {tree.size()}: "
            "was it issued by this store?"
        )
    if size == 0 or tree.root(size).hex() != checkpoint["root_hash"]:
        raise AuditError("this store's tree does not match the checkpoint's root: run `orderlog audit verify`")
    positions = app.database.positions_of(Order.id_for(order_id))
    if not positions:
        raise AuditError(f"order {order_id} not found in {app.location.label}")
    indices = tree.leaf_indices([position for _version, position in positions])
    covered = [
        (version, indices[position])
        for version, position in positions
        if position in indices and indices[position] < size
    ]
    if not covered:
        raise AuditError(
            f"no record of order {order_id} is in the checkpointed log (tree_size {size}): issue a newer checkpoint"
        )
    records = {event.originator_version: event.record() for event in app.records(Order, order_id)}
    events = [
        {
            "record": records[version],
            "leaf_index": index,
            "inclusion": [digest.hex() for digest in tree.inclusion(index, size)],
        }
        for version, index in covered
    ]
    return {
        "stream": "order",
        "key": order_id,
        "tree_size": size,
        "root_hash": checkpoint["root_hash"],
        "events": events,
        "records_after_checkpoint": len(positions) - len(covered),
        "sources": _source_keys(app, [e["record"] for e in events]),
        "log_public_key": log_public_key,
    }


def _source_keys(app: OrderLog, records: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Every public key (revoked ones too) of each source that signed one of the records."""
    keys: dict[str, list[str]] = {}
    for name in sorted({r["source"] for r in records if r.get("signature")}):
        source = app.stream(Source, name)
        keys[name] = [] if source is None else [key.public_key for key in source.keys]
    return keys
