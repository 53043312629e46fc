"""The service layer: every use case of orderlog, as a method of one eventsourcing Application.

Entry points (the command line, the Kafka processes, the console) parse their input, call
one of these methods and render the result; they hold no rules. `OrderLog` is an
eventsourcing `Application`: persistence is chosen by environment (SQLite or PostgreSQL,
see orderlog.store.location), aggregates are stream aggregates that fold records, and its
recorder is a *process* recorder, so that a batch of records is stored atomically with the
position of the input that caused it (the Kafka ingest's exactly-once effect).

Use cases:
- take upstream input in: `take`, `take_batch` (with an input position);
- read: `read_order` (now, or at a moment), `order_history`, `summary`;
- the source registry: `register_source`, `revoke_source`, `sources`;
- personal data: `forget_customer`;
- trust: `checkpoint`, `checkpoints`, `verify`, `remember_verification`, `last_verification`, `prove`.
- console accounts: orderlog.accounts.
Assemble one with orderlog.bootstrap.open_orderlog.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eventsourcing.application import Application
from eventsourcing.persistence import ApplicationRecorder, IntegrityError, Mapper, Tracking

from orderlog.audit.checkpoints import issue_checkpoint, stored_checkpoints
from orderlog.audit.proofs import order_proof
from orderlog.audit.verification import Verification, verify_store
from orderlog.domain.envelope import Upstream
from orderlog.domain.moment import Moment
from orderlog.domain.order import Order
from orderlog.domain.record import Record
from orderlog.domain.source import Source, SourceKey
from orderlog.domain.stream import NotRecorded, Outcome, StreamAggregate, record_time
from orderlog.intake.outcomes import LineResult
from orderlog.intake.pipeline import BATCH_LINES, BeforeSave, Intake
from orderlog.privacy.erasure import forget_customer
from orderlog.privacy.vault import Vault
from orderlog.sources.gate import SourceGate
from orderlog.sources.registry import SourceRequest, list_sources, register_source, revoke_source
from orderlog.store.database import Database
from orderlog.store.location import StoreLocation
from orderlog.store.log import LogReader
from orderlog.store.mapper import RecordMapper, record_of
from orderlog.summary import StoreSummary, summarise

S = TypeVar("S", bound=StreamAggregate)


class OrderNotFound(LookupError):
    """No such order, or not at the moment asked for."""


NOW = Moment()
OWN_RECORD_ATTEMPTS = 5
"""Times a record orderlog makes itself is decided again when another writer appended first."""
LAST_VERIFICATION = "last_verification"


class OrderLog(Application[UUID]):
    name = "orderlog"

    def __init__(self, location: StoreLocation, *, writing: bool = True, pool: tuple[int, int] = (2, 4)):
        self.location = location
        self.writing = writing
        super().__init__(env=location.library_env(writing=writing, pool=pool))
        self.database = Database(location, self.factory.datastore, self.recorder.events_table_name)  # type: ignore[attr-defined]
        self.log_reader = LogReader(self.database)
        self.vault = Vault(self.database, None)
        """Seals and opens personal data; without the master key it shows [encrypted]."""
        self.require_signatures = False
        self._intake: Intake | None = None
        if writing:
            self.database.create_tables()
        self._closed = False

    def close(self) -> None:
        """Closes every connection; a SQLite writer first folds its write-ahead log into the
        store file, so that the file alone holds everything (a copy of it is a whole store)."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        if self.writing and self.location.kind == "sqlite":
            with contextlib.suppress(Exception):  # best effort: the pool may be gone at exit
                self.database.checkpoint_wal()
        self.database.close()
        super().close()

    def construct_mapper(self) -> Mapper[UUID]:
        return RecordMapper(transcoder=self.factory.transcoder())

    def construct_recorder(self) -> ApplicationRecorder:
        return self.factory.process_recorder()

    # ------------------------------------------------------------ taking input in

    def intake(self, *, batch_lines: int | None = None) -> Intake:
        """A pipeline that takes upstream input into this store (validate, admit, seal,
        apply, save), holding recently used streams in memory between batches."""
        gate = SourceGate(self, require_signatures=self.require_signatures)
        return Intake(self, self.vault, gate, batch_lines=batch_lines or BATCH_LINES)

    def take(
        self, lines: Iterable[tuple[int, str | bytes]], *, batch_lines: int | None = None
    ) -> Iterator[list[LineResult]]:
        """Upstream lines (numbered), batch by batch: each batch's outcomes once it is stored."""
        yield from self.intake(batch_lines=batch_lines).take(lines)

    def take_batch(
        self,
        batch: list[tuple[int, str | bytes]],
        positions: Sequence[Tracking] = (),
        before_save: BeforeSave | None = None,
    ) -> list[LineResult]:
        """One batch in one transaction, with the input positions it reaches (see Intake.take_batch)."""
        if self._intake is None:
            self._intake = self.intake()
        return self._intake.take_batch(batch, positions, before_save)

    def position_recorded(self, tracking: Tracking) -> bool:
        """Whether an input position (a Kafka partition's offset) is stored already."""
        recorded = self.recorder.max_tracking_id(tracking.application_name)  # type: ignore[attr-defined]
        return recorded is not None and recorded >= tracking.notification_id

    # ------------------------------------------------------------ reading

    def read_order(self, order_id: str, moment: Moment = NOW) -> Order:
        """An order as it stands, or as it stood at `moment`, from one read of its records.

        Raises OrderNotFound when it does not exist, did not exist yet at that moment, or
        has no such version.
        """
        return self.order_with_history(order_id, moment)[0]

    def order_with_history(self, order_id: str, moment: Moment = NOW) -> tuple[Order, list[Record]]:
        """The order as `read_order` gives it, and every record of it (the console's order
        page shows both), from one read."""
        records = self.order_history(order_id)
        if moment.version is not None and moment.version > len(records):
            raise OrderNotFound(f"order {order_id} has {len(records)} versions; there is no version {moment.version}")
        state = Order.rebuild(records) if moment.now else Order.replay(records, moment.keeps)
        if state is None:
            raise OrderNotFound(f"order {order_id} had not been submitted by {moment.words()}")
        return state, records

    def order_history(self, order_id: str) -> list[Record]:
        """Every record of an order, in version order; OrderNotFound if it has none."""
        records = self.records(Order, order_id)
        if not records:
            raise OrderNotFound(f"order {order_id} not found in {self.location.label}")
        return records

    def summary(self) -> StoreSummary:
        return summarise(self)

    # ------------------------------------------------------------ the source registry

    def register_source(self, request: SourceRequest, by: str | None) -> tuple[SourceKey, bool]:
        return register_source(self, request, by)

    def revoke_source(self, name: str, reason: str, by: str | None) -> SourceKey:
        return revoke_source(self, name, reason, by)

    def sources(self) -> list[Source]:
        return list_sources(self)

    # ------------------------------------------------------------ personal data

    def forget_customer(self, customer_id: str, by: str, reason: str) -> int:
        """Records the erasure, then destroys the customer's data keys; returns how many."""
        return forget_customer(self, customer_id, by, reason)

    # ------------------------------------------------------------ trust

    def checkpoint(self, signing_key: Ed25519PrivateKey) -> dict[str, Any]:
        return issue_checkpoint(self, signing_key)

    def verify(self, checkpoints: list[tuple[str, dict[str, Any]]], public_key_pem: str | None) -> Verification:
        kept = [(f"kept in the store #{c['tree_size']}", c) for c in stored_checkpoints(self)]
        return verify_store(self, checkpoints + kept, public_key_pem)

    def prove(self, order_id: str, checkpoint: dict[str, Any], log_public_key: str) -> dict[str, Any]:
        return order_proof(self, order_id, checkpoint, log_public_key)

    def checkpoints(self, *, latest: int | None = None) -> list[dict[str, Any]]:
        """Every checkpoint this store kept (or the `latest` few), oldest first."""
        return stored_checkpoints(self, latest=latest)

    def remember_verification(self, result: Verification) -> None:
        """Keeps when the log was last verified and what was found, for the console's audit page."""
        summary = {"at": record_time(), "ok": result.ok, "headline": result.headline()}
        self.database.set_meta(LAST_VERIFICATION, json.dumps(summary))

    def last_verification(self) -> dict[str, Any] | None:
        kept = self.database.get_meta(LAST_VERIFICATION)
        return None if kept is None else dict(json.loads(kept))

    # ------------------------------------------------------------ streams and records

    def stream(self, cls: type[S], key: str) -> S | None:
        """A stream's state as it stands, or None if it does not exist."""
        return cls.rebuild(self.records(cls, key))

    def streams(self, wanted: dict[UUID, type[StreamAggregate]]) -> dict[UUID, StreamAggregate]:
        """Many streams at once (one query per 500), for batch work; absent ones are left out."""
        found: dict[UUID, StreamAggregate] = {}
        for originator_id, version, topic, state in self.database.events_of(list(wanted)):
            stream_id = UUID(originator_id)
            found[stream_id] = wanted[stream_id].fold(found.get(stream_id), record_of(stream_id, version, topic, state))
        return found

    def records(self, cls: type[StreamAggregate], key: str) -> list[Record]:
        """Every record of one stream, in version order."""
        return [event.record for event in self.events.get(cls.id_for(key))]  # type: ignore[attr-defined]

    def record_at(self, stream_id: UUID, version: int) -> Record | None:
        """One record of a stream, by version."""
        found = list(self.events.get(stream_id, gt=version - 1, lte=version))
        return found[0].record if found else None  # type: ignore[attr-defined]

    def save_events(self, events: Sequence[Any], positions: Sequence[Tracking] = ()) -> None:
        """Stores events in one transaction with the input positions given (see
        orderlog.store.positions); a stale stream fails the whole batch, and so does a
        position recorded already.

        Goes to the recorder directly: the event store's `put` also builds a Recording and
        a Notification object per event, which cost more than the insert and are unused here.
        """
        if events or positions:
            stored = [self.mapper.to_stored_event(event) for event in events]
            self.recorder.insert_events(stored, positions=positions)

    def record_own(self, cls: type[S], upstream: Upstream) -> S:
        """Appends (or opens the stream with) a record orderlog makes itself, and stores it.
        Another writer appending to the stream meanwhile (the CLI beside the console) makes it
        read the stream again and decide again. The same record again (its event id: the
        queue's payment timeouts, decided by two queues) is recorded already, and nothing is
        done. NotRecorded, storing nothing, when the stream refuses it: the caller checked
        before asking, so another writer got there in between."""
        for attempt in range(OWN_RECORD_ATTEMPTS):
            stream = self.stream(cls, upstream.key)
            if stream is None:
                stream = cls.open(upstream)
            else:
                decision = stream.handle(upstream)
                if decision.outcome is Outcome.DUPLICATE:  # the same record (its event id): recorded already
                    return stream
                if decision.outcome is not Outcome.ACCEPTED:
                    raise NotRecorded(decision.reason or f"{upstream.type} {upstream.event_id} was not recorded")
            try:
                self.save_events(stream.collect_events())
            except IntegrityError:
                if attempt == OWN_RECORD_ATTEMPTS - 1:
                    raise
                continue
            return stream
        raise AssertionError("unreachable")
