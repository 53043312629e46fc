"""Signed simulated traffic: one Ed25519 key pair per simulated source, kept in a directory.

`orderlog simulate --sign-with DIR` creates `DIR/<source>.pem` (private) and
`DIR/<source>.pub.pem` for every simulated source that has none yet, and writes
`DIR/sources.json` naming each source's public key (a file name in DIR) and the event
types it publishes: `orderlog sources add --from DIR/sources.json` registers them all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from orderlog.simulate import SOURCES
from orderlog.sources.signing import load_private_key, public_key_path, sign_envelope, write_key_pair


def source_keys(directory: Path, announce: Callable[[str], None]) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    keys = {}
    for source in SOURCES:
        private = directory / f"{source}.pem"
        if not private.exists():
            write_key_pair(private)
        keys[source] = private
    manifest = {
        source: {"public_key": public_key_path(keys[source]).name, "types": types} for source, types in SOURCES.items()
    }
    (directory / "sources.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    announce(f"signing keys of {len(keys)} simulated sources are in {directory} (see sources.json)")
    return keys


def sign_simulated(lines: Iterable[str], directory: Path, announce: Callable[[str], None]) -> Iterator[str]:
    """Signs every well-formed line with its source's key; malformed lines pass unsigned."""
    signers = {source: load_private_key(path) for source, path in source_keys(directory, announce).items()}
    for line in lines:
        try:
            envelope = json.loads(line)
        except ValueError:
            yield line
            continue
        signer = signers.get(envelope.get("source")) if isinstance(envelope, dict) else None
        yield (line if signer is None else json.dumps(sign_envelope(signer, envelope), ensure_ascii=False))
