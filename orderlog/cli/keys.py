"""`orderlog keys`: the master key for personal data, and Ed25519 keys for signing."""

from __future__ import annotations

from pathlib import Path

import click

from orderlog.audit_verify import public_key_id
from orderlog.cli.common import OUTPUT_FILE, cli, current_config, echo, refuse_output_over
from orderlog.privacy.master_key import new_master_key
from orderlog.sources.signing import public_key_path, write_key_pair


@cli.group()
def keys() -> None:
    """Make keys: the master key for personal data, Ed25519 keys for signing."""


@keys.command("new-master")
def keys_new_master() -> None:
    """Print a new master key (32 random bytes, base64) for ORDERLOG_MASTER_KEY."""
    echo(new_master_key())


@keys.command("new-signing")
@click.option(
    "--out",
    type=OUTPUT_FILE,
    required=True,
    metavar="FILE",
    help="private key file (mode 600); its public key goes beside it as FILE.pub.pem",
)
def keys_new_signing(out: str) -> None:
    """Write a new Ed25519 key pair (for checkpoints, or for an upstream source)."""
    refuse_output_over(str(public_key_path(Path(out))), [], current_config(), "--out")
    public_path = write_key_pair(Path(out))
    echo(
        f"wrote {out} (private, mode 600) and {public_path} (public, key id "
        f"{public_key_id(public_path.read_text(encoding='ascii'))})"
    )
