"""`audit proof`: an order's records with an inclusion proof of each against a checkpoint,
and the order's entry in the checkpoint's map of stream heads, which proves them complete.

The proof file is self-contained: the records exactly as stored (personal parts as
ciphertext), each with its leaf index and RFC 9162 inclusion path, the map proof (the
order's bucket and the 16 hashes up to the signed map root; not for checkpoints issued
before the map), the public keys of the sources that signed any of them, and the log's
public key. `python -m orderlog.audit_verify proof.json checkpoint.json` checks it with
nothing but the standard library and `cryptography`: no access to the store, no trust in
the running system.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orderlog.audit import AuditError
from orderlog.audit.persisted_map import PersistedMap
from orderlog.audit.tree import PersistedTree
from orderlog.audit_verify import verify_checkpoint
from orderlog.domain.order import Order
from orderlog.domain.source import Source

if TYPE_CHECKING:
    from orderlog.application import OrderLog


def order_proof(app: OrderLog, order_id: str, checkpoint: dict[str, Any], log_public_key: str) -> dict[str, Any]:
    """The proof of one order against a checkpoint (shape-checked), or AuditError saying
    in one line why none can be made: the order is not in the store, the checkpoint is
    invalid (checked when the log's public key is known), or it is not this store's."""
    positions = app.database.positions_of(Order.id_for(order_id))
    if not positions:
        raise AuditError(f"order {order_id} not found in {app.location.label}")
    if log_public_key and (problems := verify_checkpoint(checkpoint, log_public_key)):
        raise AuditError(f"this checkpoint is invalid: {problems[0]}")
    size = checkpoint["tree_size"]
    try:
        events = _events(app, order_id, positions, checkpoint)
    except LookupError as error:
        raise AuditError(str(error)) from None
    proof: dict[str, Any] = {
        "stream": "order",
        "key": order_id,
        "tree_size": size,
        "root_hash": checkpoint["root_hash"],
        "events": events,
        "records_after_checkpoint": len(positions) - len(events),
        "sources": _source_keys(app, [e["record"] for e in events]),
        "log_public_key": log_public_key,
    }
    if "map_root" in checkpoint:
        persisted = PersistedMap(app.database)
        if (persisted.root(size) or b"").hex() != checkpoint["map_root"]:
            raise AuditError(
                f"this store's map of stream heads at tree size {size} does not match the checkpoint's map_root: "
                "run `orderlog audit verify`"
            )
        proof["map_root"] = checkpoint["map_root"]
        proof["map"] = persisted.proof("order", order_id, size)
    return proof


def _events(
    app: OrderLog, order_id: str, positions: list[tuple[int, int]], checkpoint: dict[str, Any]
) -> list[dict[str, Any]]:
    """The order's records within the checkpoint, each with its leaf index and inclusion path."""
    tree = PersistedTree(app.database)
    size = checkpoint["tree_size"]
    if tree.size() < size:
        raise AuditError(
            f"the checkpoint covers {size} records but this store's tree holds {tree.size()}: "
            "was it issued by this store?"
        )
    if tree.root(size).hex() != checkpoint["root_hash"]:
        raise AuditError(
            f"this store's first {size} records do not hash to the checkpoint's root_hash: was it issued by this "
            "store? (if it was, run `orderlog audit verify`)"
        )
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
    records = {record.version: record.as_dict() for record in app.records(Order, order_id)}
    return [
        {
            "record": records[version],
            "leaf_index": index,
            "inclusion": [digest.hex() for digest in tree.inclusion(index, size)],
        }
        for version, index in covered
    ]


def _source_keys(app: OrderLog, records: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Every public key (revoked ones too) of each source that signed one of the records."""
    keys: dict[str, list[str]] = {}
    for name in sorted({r["source"] for r in records if r.get("signature")}):
        source = app.stream(Source, name)
        keys[name] = [] if source is None else [key.public_key for key in source.keys]
    return keys
