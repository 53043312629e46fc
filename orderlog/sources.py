"""The source registry and the gate every upstream event passes (signatures, permissions).

Rules (DESIGN.md, "Trust"):
- a signed event must verify with the active key of the source named in its `source`,
  and that source must be allowed to publish its type; a bad signature is always
  rejected;
- with signatures required, an unsigned event, an unknown or revoked source and a type
  the source may not publish are rejected too;
- a rejection names which rule failed; nothing rejected is applied.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from orderlog.application import OrderLog, own_record, record_own
from orderlog.audit_verify import envelope_payload, load_public_key, public_key_id, verify_signature
from orderlog.domain.contract import UPSTREAM_TYPES
from orderlog.domain.envelope import InvalidEvent, Upstream
from orderlog.domain.source import Source, SourceKey
from orderlog.signing import parse_json_object
from orderlog.store.mapper import topic_of

VERIFY_IN_PARALLEL_FROM = 16
"""Fewer signed events than this in a batch are checked on the calling thread."""


class SourceError(Exception):
    """A registry change that cannot be made (unknown type, already registered, ...)."""


class SourceGate:
    """Checks signatures and permissions; keeps the registry it read for one batch."""

    def __init__(self, app: OrderLog, *, require_signatures: bool):
        self._app = app
        self.require_signatures = require_signatures
        self._sources: dict[str, Source | None] = {}
        self._public_keys: dict[str, Any] = {}
        self._pool: ThreadPoolExecutor | None = None

    def refresh(self) -> None:
        """Forget the registry read so far, so that a revocation elsewhere takes effect."""
        self._sources.clear()

    def admit_batch(self, items: list[tuple[Upstream, str | bytes]]) -> Admission:
        """Starts admitting many events: the rules are checked now, the signatures on other
        threads (Ed25519 verification releases the GIL), so the caller can do other work,
        such as storing the previous batch, until it asks for the verdicts."""
        verdicts: list[Upstream | InvalidEvent] = []
        checks: list[tuple[int, Upstream, SourceKey, Any, bytes]] = []
        for upstream, text in items:
            try:
                prepared = self._prepare(upstream, text)
            except InvalidEvent as rejection:
                verdicts.append(rejection)
                continue
            verdicts.append(upstream)
            if prepared is not None:
                checks.append((len(verdicts) - 1, upstream, *prepared))
        signatures = [(public_key, up.signature or "", message) for _, up, _, public_key, message in checks]
        return Admission(verdicts, checks, self._start_verifying(signatures))

    def _prepare(self, upstream: Upstream, text: str | bytes) -> tuple[SourceKey, Any, bytes] | None:
        """The key and signed bytes to check, None for an unsigned event that may pass."""
        if upstream.signature is None:
            if self.require_signatures:
                raise _rejected(upstream, "unsigned: signatures are required (ORDERLOG_REQUIRE_SIGNATURES)")
            return None
        key = self._active_key(upstream)
        try:
            # the envelope passed strict validation, so it holds only canonical-subset values
            message = envelope_payload(parse_json_object(text), checked=False)
        except ValueError as error:
            raise _rejected(upstream, f"cannot canonicalise the signed envelope: {error}") from None
        return key, self._public_key(key), message

    def _start_verifying(self, checks: list[tuple[Any, str, bytes]]) -> list[Future[list[bool]]]:
        if len(checks) < VERIFY_IN_PARALLEL_FROM:
            done: Future[list[bool]] = Future()
            done.set_result(_verify_chunk(checks))
            return [done]
        threads = os.cpu_count() or 2
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ed25519")
        size = -(-len(checks) // (4 * threads))
        return [self._pool.submit(_verify_chunk, checks[start : start + size]) for start in range(0, len(checks), size)]

    def _active_key(self, upstream: Upstream) -> SourceKey:
        name = upstream.source
        if name not in self._sources:
            self._sources[name] = self._app.stream(Source, name)
        source = self._sources[name]
        if source is None:
            raise _rejected(upstream, f"unknown source {name!r}: register it with `orderlog sources add`")
        key = source.active_key
        if key is None:
            raise _rejected(upstream, f"source {name!r} is revoked")
        if upstream.type not in key.types:
            raise _rejected(
                upstream,
                f"source {name!r} may not publish {upstream.type} (it may publish {', '.join(key.types)})",
            )
        return key

    def _public_key(self, key: SourceKey) -> Any:
        if key.key_id not in self._public_keys:
            self._public_keys[key.key_id] = load_public_key(key.public_key)
        return self._public_keys[key.key_id]


class Admission:
    """An admission under way: call `verdicts()` for each event's verdict, in input order."""

    def __init__(
        self,
        verdicts: list[Upstream | InvalidEvent],
        checks: list[tuple[int, Upstream, SourceKey, Any, bytes]],
        verifying: list[Future[list[bool]]],
    ):
        self._verdicts = verdicts
        self._checks = checks
        self._verifying = verifying

    def verdicts(self) -> list[Upstream | InvalidEvent]:
        outcomes = [valid for part in self._verifying for valid in part.result()]
        for (index, upstream, key, _public_key, message), valid in zip(self._checks, outcomes, strict=True):
            self._verdicts[index] = (
                replace(upstream, signed_envelope=message.decode())
                if valid
                else _rejected(
                    upstream, f"bad signature: it does not verify with source {upstream.source!r} key {key.key_id}"
                )
            )
        return self._verdicts


def _verify_chunk(checks: list[tuple[Any, str, bytes]]) -> list[bool]:
    return [verify_signature(public_key, signature, message) for public_key, signature, message in checks]


def _rejected(upstream: Upstream, reason: str) -> InvalidEvent:
    return InvalidEvent(reason, event_id=upstream.event_id, key=upstream.key)


# ---------------------------------------------------------------- the registry


def register_source(app: OrderLog, name: str, types: list[str], public_key_pem: str, actor: str | None) -> SourceKey:
    unknown = [t for t in types if t not in UPSTREAM_TYPES]
    if unknown or not types:
        raise SourceError(
            f"unknown event type(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(UPSTREAM_TYPES)}"
        )
    existing = app.stream(Source, name)
    if existing is not None and existing.active_key is not None:
        raise SourceError(
            f"source {name!r} is already registered with key {existing.active_key.key_id}; "
            "revoke it first to rotate its key"
        )
    data = {
        "types": sorted(set(types)),
        "public_key": public_key_pem,
        "key_id": public_key_id(public_key_pem),
    }
    source = record_own(app, Source, own_record("SourceRegistered", name, data, actor))
    assert source.active_key is not None
    return source.active_key


def revoke_source(app: OrderLog, name: str, reason: str, actor: str | None) -> SourceKey:
    source = app.stream(Source, name)
    if source is None or source.active_key is None:
        raise SourceError(f"source {name!r} has no active key to revoke")
    key = source.active_key
    record_own(
        app,
        Source,
        own_record("SourceRevoked", name, {"key_id": key.key_id, "reason": reason}, actor),
    )
    return key


def list_sources(app: OrderLog) -> list[Source]:
    topic = topic_of("source", "SourceRegistered")
    names = sorted({record.key for record in _records_with_topic(app, topic)})
    return [source for name in names if (source := app.stream(Source, name)) is not None]


def _records_with_topic(app: OrderLog, topic: str) -> list[Any]:
    start, found = 0, []
    while True:
        page = app.recorder.select_notifications(start, 1000, topics=[topic], inclusive_of_start=False)
        found += [app.mapper.to_domain_event(notification) for notification in page]
        if len(page) < 1000:
            return found
        start = page[-1].id
