"""Random upstream traffic through the real publisher into a real store, checked after every step.

Facts and requests, valid and invalid, duplicated (re-delivered) and reordered (late in
event time). After every step, for the order the step touched:
- status and financial status agree with the figures (by an oracle written from the spec);
- the store, read by a second application, gives exactly the writer's state;
- the state at every earlier version equals what was observed then; the state known at
  each record time equals the state at the last version recorded by then; the state as of
  each event time equals an independent fold of the records that had happened by then;
- every accepted event id is stored once; nothing else is; the hash chain links up.
The same machine runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from orderlog.application import open_store
from orderlog.config import Config
from orderlog.domain.instants import format_instant
from orderlog.domain.order import COMPLETED_BY_ENGINE, Order
from orderlog.domain.reasons import CANCELLATION_REASONS
from orderlog.publishing import open_publisher
from orderlog.views import order_view
from tests import builders as b
from tests.conftest import POSTGRES_BASE, drop_schema, postgres_answers

SKUS = ["SKU-A", "SKU-B", "SKU-C"]
AMOUNTS = st.sampled_from([1, 100, 250, 500, 1000, 3000])
START = datetime(2026, 3, 1, tzinfo=UTC)


def expected_status(figures: dict[str, Any]) -> str:
    """The lifecycle's status rules, restated from the issue."""
    if figures["cancelled"]:
        return "CANCELLED"
    if figures["completed"]:
        return "COMPLETED"
    ordered = figures["ordered"]
    shipped = {sku: min(figures["shipped"].get(sku, 0), qty) for sku, qty in ordered.items()}
    if sum(shipped.values()) > 0:
        return "SHIPPED" if all(shipped[s] >= q for s, q in ordered.items()) else "PARTIALLY_SHIPPED"
    if figures["requires_confirmation"] and not figures["confirmed"]:
        return "PENDING_CONFIRMATION"
    if figures["paid"] >= figures["total"]:
        return "PENDING_SHIPMENT"
    return "PARTIALLY_PAID" if figures["paid"] > 0 else "PENDING_PAYMENT"


def expected_financial_status(figures: dict[str, Any]) -> str:
    paid, refunded, total = figures["paid"], figures["refunded"], figures["total"]
    if refunded:
        return "REFUNDED" if refunded >= paid else "PARTIALLY_REFUNDED"
    if paid >= total:
        return "PAID"
    return "PARTIALLY_PAID" if paid else "UNPAID"


def fold(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Figures from records alone, independent of the aggregate's code."""
    if not records or records[0]["type"] != "OrderSubmitted":
        return None
    first = records[0]["data"]
    figures: dict[str, Any] = {
        "ordered": {line["sku"]: line["qty"] for line in first["lines"]},
        "total": first["total"],
        "requires_confirmation": first["requires_confirmation"],
        "confirmed": False,
        "paid": 0,
        "refunded": 0,
        "shipped": defaultdict(int),
        "cancelled": False,
        "completed": False,
    }
    for record in records[1:]:
        kind, data = record["type"], record["data"]
        if kind == "PaymentCaptured":
            figures["paid"] += data["amount"]
        elif kind == "RefundIssued":
            figures["refunded"] += data["amount"]
        elif kind == "ShipmentDispatched":
            for line in data["lines"]:
                figures["shipped"][line["sku"]] += line["qty"]
        elif kind == "OrderCancelled":
            figures["cancelled"] = True
        elif kind == "OrderCompleted":
            figures["completed"] = True
        elif kind == "OrderConfirmed":
            figures["confirmed"] = True
    return figures


class OrderTraffic(RuleBasedStateMachine):
    backend = "sqlite"

    orders = Bundle("orders")

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="orderlog-stateful-"))
        if self.backend == "sqlite":
            url = f"sqlite:///{self.directory / 'store.db'}"
        else:
            url = f"{POSTGRES_BASE}?schema=s_{uuid.uuid4().hex[:12]}"
        self.config = Config(store_url=url, master_key_file=self.directory / "master.key")
        self.app, self.publisher = open_publisher(self.config, announce=lambda _m: None, batch_lines=10)
        self.reader = open_store(self.config.location, create=False)
        self.vault = self.config.vault(self.reader, writing=False, announce=lambda _m: None)
        self.clock = START
        self.sent: list[dict[str, Any]] = []
        self.stored_ids: dict[str, set[str]] = defaultdict(set)
        self.observed: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
        self.touched: str | None = None
        self.numbers = iter(range(1, 10**6))

    def teardown(self) -> None:
        self.reader.close()
        self.app.close()
        if self.backend == "postgres":
            drop_schema(self.config.location)
        shutil.rmtree(self.directory, ignore_errors=True)

    # ------------------------------------------------------------ sending

    def tick(self, minutes: int = 7) -> str:
        self.clock += timedelta(minutes=minutes)
        return format_instant(self.clock)

    def send(self, envelope: dict[str, Any] | str) -> str:
        text = envelope if isinstance(envelope, str) else json.dumps(envelope)
        before = self.store_size()
        (result,) = [r for batch in self.publisher.publish([(1, text)]) for r in batch]
        if result.outcome in ("accepted", "refused"):
            assert isinstance(envelope, dict)
            self.stored_ids[envelope["order_id"]].add(envelope["event_id"])
            self.sent.append(envelope)
            self.touched = envelope["order_id"]
            order = self.reader.stream(Order, self.touched)
            assert order is not None
            self.observed[self.touched][order.version] = order_view(order, self.vault)
        elif result.outcome == "duplicate":
            assert isinstance(envelope, dict)
            assert envelope["event_id"] in self.stored_ids[envelope["order_id"]], "a duplicate of nothing"
            assert self.store_size() == before
        else:
            assert self.store_size() == before, f"invalid input stored something: {result.reason}"
        return result.outcome

    def store_size(self) -> int:
        return sum(self.reader.database.count_by_topic().values())

    # ------------------------------------------------------------ rules

    @initialize(target=orders)
    def first_order(self) -> str:
        return self.submit_order(requires_confirmation=False, lines=[("SKU-A", 2, 500)])

    @rule(
        target=orders,
        requires_confirmation=st.booleans(),
        lines=st.lists(
            st.tuples(st.sampled_from(SKUS), st.integers(1, 3), st.sampled_from([100, 500])),
            min_size=1,
            max_size=3,
            unique_by=lambda line: line[0],
        ),
    )
    def submit_order(self, requires_confirmation: bool, lines: list[tuple[str, int, int]]) -> str:
        order_id = f"SO-{next(self.numbers)}"
        outcome = self.send(
            b.submitted(order_id, lines=lines, requires_confirmation=requires_confirmation, at=self.tick())
        )
        assert outcome == "accepted"
        return order_id

    @rule(order=orders)
    def confirm(self, order: str) -> None:
        self.send(b.confirmed(order, at=self.tick()))

    @rule(order=orders, amount=AMOUNTS, payment=st.sampled_from(["P-1", "P-2"]))
    def pay(self, order: str, amount: int, payment: str) -> None:
        self.send(b.paid(order, amount=amount, payment_id=payment, at=self.tick()))

    @rule(order=orders)
    def pay_the_rest(self, order: str) -> None:
        """What most customers do: pay exactly what is still owed."""
        state = self.reader.stream(Order, order)
        assert state is not None
        if state.total > state.paid_amount:
            self.send(b.paid(order, amount=state.total - state.paid_amount, payment_id="P-rest", at=self.tick()))

    @rule(order=orders)
    def refund_everything(self, order: str) -> None:
        state = self.reader.stream(Order, order)
        assert state is not None
        if state.paid_amount > state.refunded_amount:
            amount = state.paid_amount - state.refunded_amount
            self.send(b.refunded(order, amount=amount, refund_id=f"R-{next(self.numbers)}", at=self.tick()))

    @rule(order=orders)
    def fail_payment(self, order: str) -> None:
        self.send(b.payment_failed(order, at=self.tick()))

    @rule(
        order=orders,
        sku=st.sampled_from([*SKUS, "SKU-Z"]),
        qty=st.integers(1, 3),
        shipment=st.sampled_from(["SH-1", "SH-2"]),
    )
    def dispatch(self, order: str, sku: str, qty: int, shipment: str) -> None:
        self.send(b.dispatched(order, lines=[(sku, qty)], shipment_id=shipment, at=self.tick(600)))

    @rule(order=orders, shipment=st.sampled_from(["SH-1", "SH-2"]))
    def deliver(self, order: str, shipment: str) -> None:
        self.send(b.delivered(order, shipment_id=shipment, at=self.tick(2000)))

    @rule(order=orders, shipment=st.sampled_from(["SH-1", "SH-2"]))
    def fail_delivery(self, order: str, shipment: str) -> None:
        self.send(b.delivery_failed(order, shipment_id=shipment, at=self.tick()))

    @rule(order=orders)
    def complete(self, order: str) -> None:
        self.send(b.completed(order, at=self.tick()))

    @rule(order=orders, reason=st.sampled_from(sorted(CANCELLATION_REASONS)))
    def cancel(self, order: str, reason: str) -> None:
        self.send(b.cancelled(order, reason_code=reason, note="asked by phone", at=self.tick()))

    @rule(order=orders, amount=AMOUNTS)
    def refund(self, order: str, amount: int) -> None:
        self.send(b.refunded(order, amount=amount, refund_id=f"R-{next(self.numbers)}", at=self.tick()))

    @rule(order=orders)
    def correct_address(self, order: str) -> None:
        self.send(b.address_corrected(order, address={**b.ADDRESS, "line1": "2 New Road"}, at=self.tick()))

    @rule(order=orders, hours=st.integers(1, 48), amount=AMOUNTS)
    def late_payment(self, order: str, hours: int, amount: int) -> None:
        """A fact that arrives after later ones: its event time is in the past."""
        late = format_instant(self.clock - timedelta(hours=hours))
        self.send(b.paid(order, amount=amount, payment_id="P-late", at=late))

    @rule(pick=st.integers(0, 10**6))
    def redeliver(self, pick: int) -> None:
        if self.sent:
            assert self.send(self.sent[pick % len(self.sent)]) == "duplicate"

    @rule(
        garbage=st.one_of(
            st.binary(max_size=40).map(lambda x: x.decode("latin-1")),
            st.just('{"event_id": "e", "type": "PaymentCaptured"'),
            st.just(json.dumps(b.paid("SO-never-submitted"))),
        )
    )
    def invalid(self, garbage: str) -> None:
        if garbage.strip():
            assert self.send(garbage) == "invalid"

    @rule(order=orders)
    def wrong_types(self, order: str) -> None:
        assert self.send(json.dumps(b.paid(order, amount="100"))) == "invalid"

    # ------------------------------------------------------------ invariants

    @invariant()
    def the_touched_order_is_consistent_at_every_moment(self) -> None:
        if self.touched is None:
            return
        order_id = self.touched
        current = self.reader.stream(Order, order_id)
        cached = self.publisher._cache[Order.id_for(order_id)]  # the writer's in-memory state
        assert current is not None
        view = order_view(current, self.vault)
        assert view == order_view(cached, self.vault), "the store and the writer disagree"  # type: ignore[arg-type]
        records = [event.record() for event in self.reader.records(Order, order_id)]
        figures = fold(records)
        assert figures is not None
        assert view["status"] == expected_status(figures)
        assert view["financial_status"] == expected_financial_status(figures)
        assert (view["paid_amount"], view["refunded_amount"]) == (figures["paid"], figures["refunded"])
        self.check_records(order_id, records)
        self.check_versions(order_id, records)
        self.check_moments(order_id, records)

    def check_records(self, order_id: str, records: list[dict[str, Any]]) -> None:
        ids = [r["event_id"] for r in records]
        assert len(ids) == len(set(ids)), "an event recorded twice"
        upstream_ids = {i for i in ids if not i.startswith(COMPLETED_BY_ENGINE)}
        assert upstream_ids == self.stored_ids[order_id], "accepted events lost, or unaccepted ones stored"
        assert [r["version"] for r in records] == list(range(1, len(records) + 1))
        assert all(later["prev_hash"] == earlier["hash"] for earlier, later in pairwise(records))

    def check_versions(self, order_id: str, records: list[dict[str, Any]]) -> None:
        for version, seen in self.observed[order_id].items():
            then = self.reader.stream(Order, order_id, version=version)
            assert then is not None and order_view(then, self.vault) == seen
        for record in records:
            moment = record["recorded_at"]
            known = self.reader.stream(Order, order_id, keep=lambda e, m=moment: e.recorded_at <= m)
            last = max(r["version"] for r in records if r["recorded_at"] <= moment)
            at_version = self.reader.stream(Order, order_id, version=last)
            assert known is not None and at_version is not None
            assert order_view(known, self.vault) == order_view(at_version, self.vault)

    def check_moments(self, order_id: str, records: list[dict[str, Any]]) -> None:
        for moment in {r["occurred_at"] for r in records}:
            then = self.reader.stream(Order, order_id, keep=lambda e, m=moment: e.occurred_at <= m)
            figures = fold([r for r in records if r["occurred_at"] <= moment])
            if figures is None:
                assert then is None
                continue
            assert then is not None
            view = order_view(then, self.vault)
            assert view["status"] == expected_status(figures)
            assert view["financial_status"] == expected_financial_status(figures)
            assert (view["paid_amount"], view["refunded_amount"]) == (figures["paid"], figures["refunded"])


STATEFUL_SETTINGS = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class SQLiteTraffic(OrderTraffic):
    backend = "sqlite"


class PostgresTraffic(OrderTraffic):
    backend = "postgres"


class TestRandomTrafficOnSQLite(SQLiteTraffic.TestCase):  # type: ignore[misc,valid-type]
    settings = STATEFUL_SETTINGS


@pytest.mark.postgres
class TestRandomTrafficOnPostgres(PostgresTraffic.TestCase):  # type: ignore[misc,valid-type]
    settings = STATEFUL_SETTINGS

    def setUp(self) -> None:
        reason = postgres_answers()
        if reason:
            pytest.skip(reason)
