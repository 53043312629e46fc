"""Upstream sources: the registry of who may publish what, the gate every event passes
(signatures, permissions), and Ed25519 signing."""
