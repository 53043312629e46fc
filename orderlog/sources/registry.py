"""The source registry: which upstream sources may publish which event types, with which key.

The registry is itself event-sourced (SourceRegistered, SourceRevoked records on each
source's stream), so an auditor sees when a key was registered or revoked and by whom, and
old signatures stay checkable with the key that was valid then.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from eventsourcing.persistence import IntegrityError

from orderlog.audit_verify import public_key_id
from orderlog.domain.contract import IDENTIFIER_PATTERN, UPSTREAM_TYPES
from orderlog.domain.engine import own_record
from orderlog.domain.source import Source, SourceKey
from orderlog.domain.stream import NotRecorded
from orderlog.sources.signing import read_public_key

if TYPE_CHECKING:
    from orderlog.application import OrderLog


class SourceError(Exception):
    """A registry change that cannot be made (unknown type, already registered, ...)."""


@dataclass(frozen=True)
class SourceRequest:
    """A source to register: its name, the event types it may publish, its public key (PEM)."""

    name: str
    types: list[str]
    public_key: str


def check_source_name(name: str) -> str:
    """The name as envelopes give it in `source`: anything else could never publish."""
    if not 1 <= len(name) <= 128 or re.fullmatch(IDENTIFIER_PATTERN, name) is None:
        raise SourceError(
            f"source name {name[:60]!r}: give 1-128 characters, without spaces around them "
            "and without control or invisible characters (as upstream envelopes name their source)"
        )
    return name


def register_source(app: OrderLog, request: SourceRequest, actor: str | None) -> tuple[SourceKey, bool]:
    """Registers a source; (its active key, whether it is new). Registering a source again
    with the key it already has changes nothing, so a manifest can be loaded twice."""
    check_source_name(request.name)
    unknown = [t for t in request.types if t not in UPSTREAM_TYPES]
    if unknown or not request.types:
        raise SourceError(
            f"unknown event type(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(UPSTREAM_TYPES)}"
        )
    key_id = public_key_id(request.public_key)
    existing = app.stream(Source, request.name)
    if existing is not None and existing.active_key is not None:
        if existing.active_key.key_id == key_id:
            return existing.active_key, False
        raise SourceError(
            f"source {request.name!r} is already registered with key {existing.active_key.key_id}; "
            "revoke it first to rotate its key"
        )
    data = {"types": sorted(set(request.types)), "public_key": request.public_key, "key_id": key_id}
    try:
        source = app.record_own(Source, own_record("SourceRegistered", request.name, data, actor))
    except (NotRecorded, IntegrityError):
        raise SourceError(f"source {request.name!r} was registered by someone else a moment ago") from None
    assert source.active_key is not None
    return source.active_key, True


def read_manifest(path: Path) -> list[SourceRequest]:
    """The sources of a sources.json: `{name: {"public_key": FILE, "types": [...]}}`, key
    files relative to the manifest's own directory."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SourceError(f"sources file {path} does not exist") from None
    except (OSError, ValueError, RecursionError) as error:
        raise SourceError(f"sources file {path} is not JSON: {error}") from None
    if not isinstance(manifest, dict) or not manifest:
        raise SourceError(f"sources file {path} must be an object naming each source")
    requests = []
    for name, entry in manifest.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("public_key"), str)):
            raise SourceError(f"sources file {path}: {name!r} needs a public_key file name")
        types = entry.get("types")
        if not (isinstance(types, list) and all(isinstance(t, str) for t in types)):
            raise SourceError(f"sources file {path}: {name!r} needs a list of types")
        requests.append(SourceRequest(name, types, read_public_key(path.parent / entry["public_key"])))
    return requests


def revoke_source(app: OrderLog, name: str, reason: str, actor: str | None) -> SourceKey:
    source = app.stream(Source, name)
    if source is None or source.active_key is None:
        raise SourceError(f"source {name!r} has no active key to revoke")
    key = source.active_key
    try:
        app.record_own(Source, own_record("SourceRevoked", name, {"key_id": key.key_id, "reason": reason}, actor))
    except (NotRecorded, IntegrityError):
        raise SourceError(f"source {name!r}: its key was revoked by someone else a moment ago") from None
    return key


def list_sources(app: OrderLog) -> list[Source]:
    registrations = app.log_reader.records(types=[("source", "SourceRegistered")])
    names = sorted({record.key for _position, record in registrations})
    return [source for name in names if (source := app.stream(Source, name)) is not None]
