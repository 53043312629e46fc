"""Publishing upstream events into the store: validate, admit, apply, save, in batches.

Guarantees:
- each input line gets exactly one outcome: accepted, duplicate, refused (recorded as a
  RequestRefused on its order) or invalid (with the field and reason); nothing is dropped;
- a batch is stored in one transaction, so after a crash or kill -9 a batch is either
  wholly stored or not at all; publishing the same input again stores nothing twice,
  because an event id an order already holds is a duplicate;
- several publishers may write at once: a batch that meets a newer version of a stream
  (optimistic concurrency) is reloaded and applied again, never half-stored.
"""

from __future__ import annotations

import gc
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import IO, Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from orderlog.application import OrderLog
from orderlog.config import Config
from orderlog.domain.contract import EVENT_TYPES
from orderlog.domain.envelope import InvalidEvent, Upstream, read_envelope
from orderlog.domain.stream import ACCEPTED, DUPLICATE, StreamAggregate
from orderlog.domain.streams import STREAMS
from orderlog.privacy.vault import Vault
from orderlog.sources import Admission, SourceGate

INVALID = "invalid"
BATCH_LINES = 5000
CACHED_STREAMS = 50_000
SAVE_ATTEMPTS = 8
THAW_EVERY_BATCHES = 64


@dataclass(frozen=True, slots=True)
class LineResult:
    line: int
    outcome: str
    event_id: str | None = None
    key: str | None = None
    reason: str = ""

    def as_reject(self) -> dict[str, Any]:
        """The rejects-file form of a refused or invalid line."""
        return {
            "line": self.line,
            "outcome": self.outcome,
            "event_id": self.event_id,
            "key": self.key,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class BatchReport:
    """What one stored batch did: counts per outcome, the lines that were not accepted, and
    how far into the input it got (bytes, for progress)."""

    counts: dict[str, int]
    rejects: list[LineResult]
    position: int = 0

    @classmethod
    def of(cls, results: Iterable[LineResult], position: int = 0) -> BatchReport:
        counts = dict.fromkeys(OUTCOMES, 0)
        rejects = []
        for result in results:
            counts[result.outcome] += 1
            if result.outcome in REJECTED:
                rejects.append(result)
        return cls(counts, rejects, position)


OUTCOMES = ("accepted", "duplicate", "refused", INVALID)
REJECTED = frozenset({"refused", INVALID})


@dataclass
class Tally:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))

    def add(self, results: Iterable[LineResult] | BatchReport) -> None:
        report = results if isinstance(results, BatchReport) else BatchReport.of(results)
        for outcome, count in report.counts.items():
            self.counts[outcome] += count

    @property
    def clean(self) -> bool:
        """Everything accepted or a duplicate: what exit code 0 means."""
        return self.counts["refused"] == 0 and self.counts[INVALID] == 0

    def __str__(self) -> str:
        c = self.counts
        return f"accepted {c['accepted']}, duplicates {c['duplicate']}, refused {c['refused']}, invalid {c[INVALID]}"


def input_lines(file: IO[bytes]) -> Iterator[tuple[int, bytes, int]]:
    """(line number, the line without surrounding blanks, bytes read so far) of every
    non-blank line: blank lines are not events and are passed over."""
    position = 0
    for number, line in enumerate(file, start=1):
        position += len(line)
        stripped = line.strip()
        if stripped:
            yield number, stripped, position


@dataclass
class _Admitted:
    """A batch read and under admission: its lines' verdicts, in input order, on demand."""

    batch: list[tuple[int, str | bytes]]
    unreadable: list[tuple[int, LineResult]]
    readable_lines: list[int]
    admission: Admission

    def items(self) -> list[tuple[int, Upstream | LineResult]]:
        items: list[tuple[int, Upstream | LineResult]] = list(self.unreadable)
        for line, verdict in zip(self.readable_lines, self.admission.verdicts(), strict=True):
            items.append(
                (line, LineResult(line, INVALID, verdict.event_id, verdict.key, verdict.reason))
                if isinstance(verdict, InvalidEvent)
                else (line, verdict)
            )
        items.sort(key=lambda item: item[0])
        return items


class ConcurrentWriteError(Exception):
    """Other writers kept changing the same orders; the batch was not stored."""


class Publisher:
    def __init__(
        self,
        app: OrderLog,
        vault: Vault,
        gate: SourceGate,
        *,
        batch_lines: int = BATCH_LINES,
        cached_streams: int = CACHED_STREAMS,
    ):
        self._app = app
        self._vault = vault
        self._gate = gate
        self._batch_lines = batch_lines
        self._cached_streams = max(cached_streams, 2 * batch_lines)
        self._cache: OrderedDict[UUID, StreamAggregate] = OrderedDict()
        self._batches = 0

    def publish(self, lines: Iterable[tuple[int, str | bytes]]) -> Iterator[list[LineResult]]:
        """Results batch by batch, each yielded once its batch is stored.

        One batch ahead is read and its signatures checked on other threads while the
        batch before it is applied and stored.
        """
        iterator = iter(lines)
        waiting: _Admitted | None = None
        while batch := list(islice(iterator, self._batch_lines)):
            admitted = self._admit(batch)
            if waiting is not None:
                yield self._store(waiting)
            waiting = admitted
        if waiting is not None:
            yield self._store(waiting)

    def publish_batch(self, batch: list[tuple[int, str | bytes]]) -> list[LineResult]:
        return self._store(self._admit(batch))

    def _admit(self, batch: list[tuple[int, str | bytes]]) -> _Admitted:
        """Validates every line and starts admitting the readable ones (signatures, sources)."""
        self._gate.refresh()
        unreadable: list[tuple[int, LineResult]] = []
        readable: list[tuple[int, Upstream, str | bytes]] = []
        for line, text in batch:
            try:
                readable.append((line, read_envelope(text), text))
            except InvalidEvent as error:
                unreadable.append((line, LineResult(line, INVALID, error.event_id, error.key, error.reason)))
        admission = self._gate.admit_batch([(upstream, text) for _, upstream, text in readable])
        return _Admitted(batch, unreadable, [line for line, _, _ in readable], admission)

    def _store(self, admitted: _Admitted) -> list[LineResult]:
        items = admitted.items()
        for _attempt in range(SAVE_ATTEMPTS):
            try:
                return self._apply_and_save(items)
            except IntegrityError:
                continue  # another writer moved one of our streams on: reload and redo
        first, last = admitted.batch[0][0], admitted.batch[-1][0]
        raise ConcurrentWriteError(
            f"lines {first}-{last} met concurrent writes {SAVE_ATTEMPTS} times; none of them was stored"
        )

    def _apply_and_save(self, admitted: list[tuple[int, Upstream | LineResult]]) -> list[LineResult]:
        touched: list[UUID] = []
        try:
            results, events = self._apply(admitted, touched)
            self._app.save_events(events)
        except BaseException:
            for stream_id in touched:  # they hold unsaved changes
                self._cache.pop(stream_id, None)
            raise
        self._trim_cache()
        self._keep_collector_off_the_cache()
        return results

    def _keep_collector_off_the_cache(self) -> None:
        """The cache holds tens of thousands of long-lived aggregates; without this every full
        collection walks all of them again and publishing slows as the cache grows. Freezing
        moves them out of the collector's sight (reference counting still frees them when they
        leave the cache: aggregates hold no cycles). Every so often everything is thawed and
        collected once, so that cyclic garbage frozen by mistake cannot pile up in a process
        that runs for days."""
        self._batches += 1
        if self._batches % THAW_EVERY_BATCHES == 0:
            gc.unfreeze()
            gc.collect()
        else:
            gc.collect(1)
        gc.freeze()

    def _apply(
        self, admitted: list[tuple[int, Upstream | LineResult]], touched: list[UUID]
    ) -> tuple[list[LineResult], list[Any]]:
        upstreams = [item for _, item in admitted if isinstance(item, Upstream)]
        streams = self._load(upstreams)
        self._vault.ensure_keys(_customers(upstreams, streams))
        results: list[LineResult] = []
        events: list[Any] = []
        for line, item in admitted:
            if isinstance(item, LineResult):
                results.append(item)
                continue
            cls = STREAMS[item.stream]
            stream_id = cls.id_for(item.key)
            stream = streams.get(stream_id)
            if stream is None and item.type not in cls.OPENED_BY:
                results.append(LineResult(line, INVALID, item.event_id, item.key, _never_opened(cls, item)))
                continue
            touched.append(stream_id)
            if stream is None:
                stream = streams[stream_id] = self._cache[stream_id] = cls.open(self._seal(item, None))
                decision = ACCEPTED
            elif item.event_id in stream.event_ids:
                decision = DUPLICATE
            else:
                decision = stream.handle(self._seal(item, stream))
            events += stream.collect_events()
            results.append(LineResult(line, decision.outcome.value, item.event_id, item.key, decision.reason))
        return results, events

    def _load(self, upstreams: list[Upstream]) -> dict[UUID, StreamAggregate | None]:
        """The streams a batch touches: from the cache, else from the store (None: absent)."""
        wanted: dict[UUID, type[StreamAggregate]] = {}
        streams: dict[UUID, StreamAggregate | None] = {}
        for upstream in upstreams:
            cls = STREAMS[upstream.stream]
            stream_id = cls.id_for(upstream.key)
            if stream_id in streams or stream_id in wanted:
                continue
            cached = self._cache.get(stream_id)
            if cached is None:
                wanted[stream_id] = cls
            else:
                self._cache.move_to_end(stream_id)
                streams[stream_id] = cached
        loaded = self._app.streams(wanted) if wanted else {}
        for stream_id in wanted:
            stream = streams[stream_id] = loaded.get(stream_id)
            if stream is not None:
                self._cache[stream_id] = stream
        return streams

    def _trim_cache(self) -> None:
        while len(self._cache) > self._cached_streams:
            self._cache.popitem(last=False)

    def _seal(self, upstream: Upstream, stream: StreamAggregate | None) -> Upstream:
        """Personal parts encrypted under the customer's key before the domain sees them."""
        event_type = EVENT_TYPES[upstream.type]
        if not event_type.personal:
            return upstream
        customer_id = (
            upstream.data["customer_id"]
            if stream is None or upstream.type == "OrderSubmitted"
            else (
                stream.customer_id  # type: ignore[attr-defined]
            )
        )
        data = dict(upstream.data)
        for name in event_type.address_fields:
            data[name] = self._vault.seal_address(customer_id, data[name])
        signed = upstream.signed_envelope
        if signed is not None:
            signed = self._vault.seal_text(customer_id, signed)
        return replace(upstream, data=data, signed_envelope=signed)


def _customers(upstreams: list[Upstream], streams: dict[UUID, StreamAggregate | None]) -> set[str]:
    """The customers whose data keys a batch will use to seal personal data."""
    customers = set()
    for upstream in upstreams:
        if not EVENT_TYPES[upstream.type].personal:
            continue
        if upstream.type == "OrderSubmitted":
            customers.add(upstream.data["customer_id"])
        elif (stream := streams.get(STREAMS[upstream.stream].id_for(upstream.key))) is not None:
            customers.add(stream.customer_id)  # type: ignore[attr-defined]
    return customers


def _never_opened(cls: type[StreamAggregate], upstream: Upstream) -> str:
    opening = " or ".join(sorted(cls.OPENED_BY))
    return f"{cls.STREAM} {upstream.key} does not exist: no {opening} has been recorded for it"


def open_publisher(
    config: Config, announce: Callable[[str], None], *, batch_lines: int = BATCH_LINES
) -> tuple[OrderLog, Publisher]:
    """A store and a publisher on it, configured as `config` says."""
    app = config.open(create=True)
    vault = config.vault(app, writing=True, announce=announce)
    gate = SourceGate(app, require_signatures=config.require_signatures)
    return app, Publisher(app, vault, gate, batch_lines=batch_lines)
