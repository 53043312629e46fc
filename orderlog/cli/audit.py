"""`orderlog audit checkpoint|verify|proof`: tamper evidence, for auditors."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
from pathlib import Path

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eventsourcing.persistence import PersistenceError

from orderlog.audit import AuditError
from orderlog.audit.checkpoints import load_checkpoint, write_checkpoint
from orderlog.audit.verification import Verification
from orderlog.bootstrap import open_store
from orderlog.cli.common import OUTPUT_FILE, OUTPUT_OR_STDOUT, cli, current_config, echo, opened, refuse_output_over
from orderlog.sources.signing import load_private_key, public_pem, read_public_key
from orderlog.store.location import StoreError


@cli.group()
def audit() -> None:
    """Tamper evidence: checkpoints, verification, proofs (see README: for auditors)."""


def _signing_key(path: str | None) -> Ed25519PrivateKey:
    chosen = Path(path) if path else current_config().signing_key
    if chosen is None:
        raise AuditError(
            "no signing key: set ORDERLOG_SIGNING_KEY to an Ed25519 PEM file or pass --signing-key "
            "(`orderlog keys new-signing --out FILE` writes one)"
        )
    return load_private_key(chosen)


def _public_key_text(public_key: str | None, signing_key: str | None) -> str | None:
    """The log's public key: given, else derived from the instance's signing key, else None."""
    if public_key:
        return read_public_key(Path(public_key))
    if signing_key or current_config().signing_key:
        return public_pem(_signing_key(signing_key)).decode()
    return None


SIGNING_KEY_OPTION = click.option(
    "--signing-key",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Ed25519 PEM key [env ORDERLOG_SIGNING_KEY]",
)


LOG_PUBLIC_KEY_OPTION = click.option(
    "--public-key",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="the log's Ed25519 public key (PEM) that you trust (default: from the signing key)",
)


@audit.command("checkpoint")
@click.option("--out", type=OUTPUT_FILE, metavar="FILE", help="also write it here")
@SIGNING_KEY_OPTION
def audit_checkpoint(out: str | None, signing_key: str | None) -> None:
    """Extend the log's Merkle tree and its map of stream heads to the end of the log and sign both roots.

    Prints the checkpoint (JSON); keep copies outside the system (mail, publish them).
    """
    refuse_output_over(out, [name for name in (signing_key,) if name], current_config(), "--out")
    key = _signing_key(signing_key)
    checkpoint = opened(writing=True).checkpoint(key)
    echo(write_checkpoint(checkpoint, Path(out) if out else None), nl=False)


@audit.command("verify")
@click.option(
    "--checkpoint",
    "checkpoint_files",
    type=click.Path(dir_okay=False),
    multiple=True,
    metavar="FILE",
    help="a checkpoint to prove the log extends (repeatable)",
)
@LOG_PUBLIC_KEY_OPTION
@SIGNING_KEY_OPTION
@click.option("--json", "as_json", is_flag=True)
def audit_verify(
    checkpoint_files: tuple[str, ...], public_key: str | None, signing_key: str | None, as_json: bool
) -> None:
    """Recompute every hash chain, the Merkle tree and the map of stream heads; name the first divergence.

    Each checkpoint is checked itself first (its fields and, with the log's public key, its signature), then
    compared with the log. Exits 0 when everything verifies, 1 otherwise.
    """
    app = opened()
    checkpoints = [(name, load_checkpoint(Path(name))) for name in checkpoint_files]
    result = app.verify(checkpoints, _public_key_text(public_key, signing_key))
    _remember(result)
    if as_json:
        echo(json.dumps(result.as_dict(), indent=2))
    else:
        echo(result.headline())
        for divergence in result.divergences[1:]:
            echo(f"  also: {divergence}")
        if result.divergence_count > len(result.divergences):
            echo(f"  ... {result.divergence_count - len(result.divergences)} more divergences")
        for check in result.checkpoints:
            echo(str(check))
    if not result.ok:
        sys.exit(1)


def _remember(result: Verification) -> None:
    """For the console's audit page; a store that cannot be written (a read-only copy) keeps no note."""
    with contextlib.suppress(StoreError, PersistenceError, sqlite3.Error, OSError):
        writer = open_store(current_config().location, writing=True)
        try:
            writer.remember_verification(result)
        finally:
            writer.close()


@audit.command("proof")
@click.argument("order_id")
@click.option("--checkpoint", "checkpoint_file", type=click.Path(dir_okay=False), required=True, metavar="FILE")
@click.option("--out", type=OUTPUT_OR_STDOUT, metavar="FILE", help="default (or -): stdout")
@LOG_PUBLIC_KEY_OPTION
@SIGNING_KEY_OPTION
def audit_proof(
    order_id: str, checkpoint_file: str, out: str | None, public_key: str | None, signing_key: str | None
) -> None:
    """An order's records with inclusion proofs against a checkpoint, and the map proof that they are all
    of them, for offline checking:

    python -m orderlog.audit_verify proof.json checkpoint.json --public-key log.pub.pem
    """
    reads = [name for name in (checkpoint_file, public_key, signing_key) if name]
    refuse_output_over(out, reads, current_config(), "--out")
    checkpoint = load_checkpoint(Path(checkpoint_file))
    proof = opened().prove(order_id, checkpoint, _public_key_text(public_key, signing_key) or "")
    text = json.dumps(proof, indent=2, ensure_ascii=False) + "\n"
    if out:
        Path(out).write_text(text, encoding="utf-8")
    else:
        echo(text, nl=False)
