"""The gate every upstream event passes: signatures and permissions, by the registry.

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
from typing import TYPE_CHECKING, Any

from orderlog.audit_verify import envelope_payload, load_public_key, verify_signature
from orderlog.domain.envelope import InvalidEvent, Upstream
from orderlog.domain.source import Source, SourceKey
from orderlog.sources.signing import parse_json_object

if TYPE_CHECKING:
    from orderlog.application import OrderLog

VERIFY_IN_PARALLEL_FROM = 16
"""Fewer signed events than this in a batch are checked on the calling thread."""


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
