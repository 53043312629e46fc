"""Taking upstream input into the store: validate, admit, seal, apply, save, in batches.

The same pipeline serves `orderlog publish` (a file) and the Kafka ingest (a topic, with
the consumed positions stored atomically with each batch).

Guarantees:
- each input line gets exactly one outcome: accepted, duplicate, refused (recorded as a
  RequestRefused on its order), invalid (with the field and reason) or, should orderlog
  itself fail on it, failed; nothing is dropped;
- nothing a line contains can stop the others: every step that touches a raw line
  (decoding, parsing, validation, signature checks) turns any failure into that line's
  reason, and a defect while applying one line sets that line aside and applies the rest;
- a batch is stored in one transaction, so after a crash or kill -9 a batch is either
  wholly stored or not at all; publishing the same input again stores nothing twice,
  because an event id an order already holds is a duplicate;
- several publishers may write at once: a batch that meets a newer version of a stream
  (optimistic concurrency) is reloaded and applied again, never half-stored;
- with input positions (Kafka partitions' offsets), the batch is stored with them in the
  same transaction; a position already recorded is recognised as such, never retried as
  a version conflict.
"""

from __future__ import annotations

import gc
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import islice
from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import IntegrityError, Tracking

from orderlog.domain.contract import EVENT_TYPES
from orderlog.domain.envelope import InvalidEvent, Upstream
from orderlog.domain.stream import ACCEPTED, StreamAggregate, record_time
from orderlog.domain.streams import STREAMS
from orderlog.intake.outcomes import INVALID, LineResult
from orderlog.intake.reading import failure, read_line
from orderlog.intake.redeliveries import BatchRecords, judge_redelivery
from orderlog.privacy.vault import Vault
from orderlog.sources.gate import Admission, SourceGate

if TYPE_CHECKING:
    from orderlog.application import OrderLog

BeforeSave = Callable[[list[LineResult]], None]
StreamName = tuple[str, str]
"""(stream kind, key): how the intake names a stream (cheaper to hash than its UUID)."""

BATCH_LINES = 5000
CACHED_STREAMS = 50_000
SAVE_ATTEMPTS = 8
THAW_EVERY_LINES = 320_000
"""How many lines pass between full collections (each walks every cached aggregate, ~0.1 s)."""


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


class PositionAlreadyRecorded(Exception):
    """Input positions of a batch are recorded already: what they end was stored before (a
    re-delivery after a crash or a rebalance), and nothing of the batch was stored now."""

    def __init__(self, recorded: list[Tracking]):
        named = ", ".join(f"{tracking.application_name} position {tracking.notification_id}" for tracking in recorded)
        super().__init__(f"{named} recorded already")
        self.recorded = recorded


class Intake:
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
        self._cache: OrderedDict[StreamName, StreamAggregate] = OrderedDict()
        self._lines_since_collection = 0

    def take(self, lines: Iterable[tuple[int, str | bytes]]) -> Iterator[list[LineResult]]:
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

    def take_batch(
        self,
        batch: list[tuple[int, str | bytes]],
        positions: Sequence[Tracking] = (),
        before_save: BeforeSave | None = None,
    ) -> list[LineResult]:
        """One batch, stored in one transaction with the input `positions` it reaches.

        `before_save` sees every line's outcome once the batch is applied and before it is
        saved (again, if a concurrent write makes it apply the batch again): the Kafka
        ingest sends its dead letters there, so that none is lost to a crash after saving.
        Raises PositionAlreadyRecorded, naming them, when any of the positions is stored already.
        """
        return self._store(self._admit(batch), positions, before_save)

    def _admit(self, batch: list[tuple[int, str | bytes]]) -> _Admitted:
        """Validates every line and starts admitting the readable ones (signatures, sources)."""
        self._gate.refresh()
        unreadable: list[tuple[int, LineResult]] = []
        readable: list[tuple[int, Upstream, str | bytes]] = []
        for line, text in batch:
            read = read_line(line, text)
            if isinstance(read, LineResult):
                unreadable.append((line, read))
            else:
                readable.append((line, read, text))
        admission = self._gate.admit_batch([(upstream, text) for _, upstream, text in readable])
        return _Admitted(batch, unreadable, [line for line, _, _ in readable], admission)

    def _store(
        self, admitted: _Admitted, positions: Sequence[Tracking] = (), before_save: BeforeSave | None = None
    ) -> list[LineResult]:
        items = admitted.items()
        attempts = 0
        while attempts < SAVE_ATTEMPTS:
            try:
                return self._apply_and_save(items, positions, before_save)
            except _LineDefect as defect:  # set that line aside, apply the rest again
                items[defect.index] = (items[defect.index][0], defect.result)
            except IntegrityError:
                recorded = [position for position in positions if self._app.position_recorded(position)]
                if recorded:
                    raise PositionAlreadyRecorded(recorded) from None
                attempts += 1  # another writer moved one of our streams on: reload and redo
        first, last = admitted.batch[0][0], admitted.batch[-1][0]
        raise ConcurrentWriteError(
            f"lines {first}-{last} met concurrent writes {SAVE_ATTEMPTS} times; none of them was stored"
        )

    def _apply_and_save(
        self,
        admitted: list[tuple[int, Upstream | LineResult]],
        positions: Sequence[Tracking],
        before_save: BeforeSave | None,
    ) -> list[LineResult]:
        touched: list[StreamName] = []
        try:
            results, events = self._apply(admitted, touched)
            if before_save is not None:
                before_save(results)
            self._app.save_events(events, positions)
        except BaseException:
            for name in touched:  # they hold unsaved changes
                self._cache.pop(name, None)
            raise
        self._trim_cache()
        self._keep_collector_off_the_cache(len(admitted))
        return results

    def _keep_collector_off_the_cache(self, lines: int) -> None:
        """The cache holds tens of thousands of long-lived aggregates; without this every full
        collection walks all of them again and publishing slows as the cache grows. Freezing
        moves them out of the collector's sight (reference counting still frees them when they
        leave the cache: aggregates hold no cycles). Every so often everything is thawed and
        collected once, so that cyclic garbage frozen by mistake cannot pile up in a process
        that runs for days. Counted in lines, not batches: the Kafka ingest takes many small
        batches when traffic is light, and a full collection every few of them was most of its
        latency."""
        self._lines_since_collection += lines
        if self._lines_since_collection >= THAW_EVERY_LINES:
            self._lines_since_collection = 0
            gc.unfreeze()
            gc.collect()
        else:
            gc.collect(1)
        gc.freeze()

    def _apply(
        self, admitted: list[tuple[int, Upstream | LineResult]], touched: list[StreamName]
    ) -> tuple[list[LineResult], list[Any]]:
        upstreams = [item for _, item in admitted if isinstance(item, Upstream)]
        streams = self._load(upstreams)
        self._vault.ensure_keys(_customers(upstreams, streams))
        results: list[LineResult] = []
        events: list[Any] = []
        batch = BatchRecords(self._app)
        now = record_time()  # one record time for the batch: it is one transaction
        for index, (line, item) in enumerate(admitted):
            if isinstance(item, LineResult):
                results.append(item)
                continue
            try:
                result, recorded = self._apply_one(line, item, streams, touched, batch, now)
            except Exception as error:
                raise _LineDefect(index, failure(line, error, item.event_id, item.key)) from error
            results.append(result)
            events += recorded
            batch.add(recorded)
        return results, events

    def _apply_one(  # noqa: PLR0917 (one line's context, all of it needed)
        self,
        line: int,
        item: Upstream,
        streams: dict[StreamName, StreamAggregate | None],
        touched: list[StreamName],
        batch: BatchRecords,
        now: str,
    ) -> tuple[LineResult, list[Any]]:
        """One line's outcome and the records it adds."""
        cls = STREAMS[item.stream]
        name = (cls.STREAM, item.key)
        stream = streams.get(name)
        if stream is None and item.type not in cls.OPENED_BY:
            return LineResult(line, INVALID, item.event_id, item.key, _never_opened(cls, item)), []
        touched.append(name)
        if stream is None:
            stream = streams[name] = self._cache[name] = cls.open(self._seal(item, None), now)
            decision = ACCEPTED
        elif item.event_id in stream.event_ids:
            decision = judge_redelivery(stream, item, batch, self._vault)
        else:
            decision = stream.handle(self._seal(item, stream), now)
        added = stream.collect_events()
        result = LineResult(line, decision.outcome.value, item.event_id, item.key, decision.reason, bool(added))
        return result, added

    def _load(self, upstreams: list[Upstream]) -> dict[StreamName, StreamAggregate | None]:
        """The streams a batch touches: from the cache, else from the store (None: absent)."""
        wanted: dict[StreamName, type[StreamAggregate]] = {}
        streams: dict[StreamName, StreamAggregate | None] = {}
        for upstream in upstreams:
            cls = STREAMS[upstream.stream]
            name = (cls.STREAM, upstream.key)
            if name in streams or name in wanted:
                continue
            cached = self._cache.get(name)
            if cached is None:
                wanted[name] = cls
            else:
                self._cache.move_to_end(name)
                streams[name] = cached
        by_id = {cls.id_for(key): (cls, key) for (_, key), cls in wanted.items()}
        loaded = self._app.streams({stream_id: cls for stream_id, (cls, _) in by_id.items()}) if wanted else {}
        for stream_id, (cls, key) in by_id.items():
            stream = streams[(cls.STREAM, key)] = loaded.get(stream_id)
            if stream is not None:
                self._cache[(cls.STREAM, key)] = stream
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


def _customers(upstreams: list[Upstream], streams: dict[StreamName, StreamAggregate | None]) -> set[str]:
    """The customers whose data keys a batch will use to seal personal data."""
    customers = set()
    for upstream in upstreams:
        if not EVENT_TYPES[upstream.type].personal:
            continue
        if upstream.type == "OrderSubmitted":
            customers.add(upstream.data["customer_id"])
        elif (stream := streams.get((upstream.stream, upstream.key))) is not None:
            customers.add(stream.customer_id)  # type: ignore[attr-defined]
    return customers


class _LineDefect(Exception):
    """Applying one line raised: the batch is applied again without it."""

    def __init__(self, index: int, result: LineResult):
        super().__init__(result.reason)
        self.index = index
        self.result = result


def _never_opened(cls: type[StreamAggregate], upstream: Upstream) -> str:
    opening = " or ".join(sorted(cls.OPENED_BY))
    return f"{cls.STREAM} {upstream.key} does not exist: no {opening} has been recorded for it"
