"""Audit: the log's Merkle tree, signed checkpoints, verification and proofs (DESIGN.md, "Trust")."""


class AuditError(Exception):
    """An audit step that cannot be done as asked (no signing key, a bad checkpoint file, ...)."""
