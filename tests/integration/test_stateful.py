"""Random upstream traffic through the real publisher into a real store, against a model.

The model is written from the lifecycle table, not from orderlog's code: for every line it
predicts the outcome (accepted, refused, duplicate, conflict, invalid), the records it adds
(a refusal, a conflict record, the engine's completion) and the figures after it. After
every step, for the order the step touched:
- the publisher's outcome is the predicted one, and the store holds the predicted records;
- status and financial status agree with the figures (an oracle restated from the spec);
- the store, read by a second application, gives exactly the writer's state;
- the service's own moment reads (the ones `order show --as-of/--known-at/--version`
  use) give: at every version what was observed then; known at each record time, the
  state at the last version recorded by then; as of each event time, an independent fold
  of the records that had happened by then;
- every accepted event id is stored once; nothing else is; the hash chain links up.
The same machine runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from orderlog.bootstrap import open_store
from orderlog.config import Config
from orderlog.domain.instants import format_instant
from orderlog.domain.moment import Moment
from orderlog.domain.order import COMPLETED_BY_ENGINE, Order
from orderlog.domain.reasons import CANCELLATION_REASONS
from orderlog.presentation import order_view
from tests import builders as b
from tests.conftest import POSTGRES_BASE, drop_schema, open_intake, postgres_answers

SKUS = ["SKU-A", "SKU-B", "SKU-C"]
AMOUNTS = st.sampled_from([1, 100, 250, 500, 1000, 3000])
START = datetime(2026, 3, 1, tzinfo=UTC)
NATURAL_KEYS = {
    "PaymentCaptured": "payment_id",
    "RefundIssued": "refund_id",
    "ShipmentDispatched": "shipment_id",
    "ShipmentDelivered": "shipment_id",
}
FACTS = {*NATURAL_KEYS, "PaymentFailed", "DeliveryFailed"}


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


@dataclass
class ModelOrder:
    """What the lifecycle table says an order is, kept apart from orderlog's aggregate."""

    figures: dict[str, Any]
    records: list[str] = field(default_factory=list)  # the types of its records, in order
    contents: dict[str, dict[str, Any]] = field(default_factory=dict)  # event id -> what was sent
    facts: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # natural key -> data
    shipments: dict[str, bool] = field(default_factory=dict)  # shipment id -> delivered
    latest: str = ""  # the latest event time of its records

    @property
    def status(self) -> str:
        return expected_status(self.figures)

    def refusal(self, kind: str) -> bool:
        """Whether the lifecycle table refuses this request now."""
        status, figures = self.status, self.figures
        closed = status in ("CANCELLED", "COMPLETED")
        return {
            "OrderSubmitted": True,
            "OrderConfirmed": closed or not figures["requires_confirmation"] or figures["confirmed"],
            "OrderCancelled": status
            not in ("PENDING_CONFIRMATION", "PENDING_PAYMENT", "PARTIALLY_PAID", "PENDING_SHIPMENT"),
            "OrderCompleted": status != "SHIPPED",
            "AddressCorrected": status in ("SHIPPED", "COMPLETED", "CANCELLED"),
        }[kind]

    def apply_fact(self, kind: str, data: dict[str, Any]) -> None:
        figures = self.figures
        if kind == "PaymentCaptured":
            figures["paid"] += data["amount"]
        elif kind == "RefundIssued":
            figures["refunded"] += data["amount"]
        elif kind == "ShipmentDispatched":
            self.shipments.setdefault(data["shipment_id"], False)
            for line in data["lines"]:
                figures["shipped"][line["sku"]] += line["qty"]
        elif kind == "ShipmentDelivered":
            self.shipments[data["shipment_id"]] = True
        elif kind == "DeliveryFailed":
            self.shipments.setdefault(data["shipment_id"], False)

    def completes(self) -> bool:
        """After a dispatch or a delivery: everything shipped and every shipment delivered."""
        return self.status == "SHIPPED" and bool(self.shipments) and all(self.shipments.values())


def sent(envelope: dict[str, Any]) -> dict[str, Any]:
    return {k: envelope.get(k) for k in ("type", "occurred_at", "source", "actor", "correlation_id", "data")}


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
        self.app, self.publisher = open_intake(self.config, batch_lines=10)
        self.reader = open_store(self.config.location)
        self.vault = self.reader.vault
        self.clock = START
        self.model: dict[str, ModelOrder] = {}
        self.history: list[dict[str, Any]] = []
        self.observed: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
        self.touched: str | None = None
        self.numbers = iter(range(1, 10**6))

    def teardown(self) -> None:
        self.reader.close()
        self.app.close()
        if self.backend == "postgres":
            drop_schema(self.config.location)
        shutil.rmtree(self.directory, ignore_errors=True)

    # ------------------------------------------------------------ the model's prediction

    def predict(self, envelope: dict[str, Any]) -> tuple[str, list[str]]:
        """(outcome, types of the records it adds), from the lifecycle table alone."""
        kind, order_id = envelope["type"], envelope["order_id"]
        model = self.model.get(order_id)
        if model is None:
            return ("accepted", ["OrderSubmitted"]) if kind == "OrderSubmitted" else ("invalid", [])
        if envelope["event_id"] in model.contents:
            return ("duplicate" if model.contents[envelope["event_id"]] == sent(envelope) else "conflict"), []
        if kind in FACTS:
            key = NATURAL_KEYS.get(kind)
            earlier = model.facts.get((kind, envelope["data"][key])) if key else None
            if earlier is not None:
                return ("duplicate", []) if earlier == envelope["data"] else ("conflict", ["ConflictRecorded"])
            added = [kind]
            model_after = self._applied(model, envelope)
            if kind in ("ShipmentDispatched", "ShipmentDelivered") and model_after.completes():
                added.append("OrderCompleted")
            return "accepted", added
        if model.refusal(kind):
            return "refused", ["RequestRefused"]
        return "accepted", [kind]

    @staticmethod
    def _applied(model: ModelOrder, envelope: dict[str, Any]) -> ModelOrder:
        copy = ModelOrder(
            figures={**model.figures, "shipped": defaultdict(int, model.figures["shipped"])},
            shipments=dict(model.shipments),
        )
        copy.apply_fact(envelope["type"], envelope["data"])
        return copy

    def remember(self, envelope: dict[str, Any], outcome: str, added: list[str]) -> None:
        kind, order_id = envelope["type"], envelope["order_id"]
        if kind == "OrderSubmitted" and outcome == "accepted":
            data = envelope["data"]
            self.model[order_id] = ModelOrder(
                figures={
                    "ordered": {line["sku"]: line["qty"] for line in data["lines"]},
                    "total": data["total"],
                    "requires_confirmation": data["requires_confirmation"],
                    "confirmed": False,
                    "paid": 0,
                    "refunded": 0,
                    "shipped": defaultdict(int),
                    "cancelled": False,
                    "completed": False,
                }
            )
        model = self.model.get(order_id)
        if model is None or not added:
            return
        model.contents[envelope["event_id"]] = sent(envelope)
        model.records += added
        model.latest = max(model.latest, envelope["occurred_at"])
        if outcome != "accepted" or kind == "OrderSubmitted":
            return
        if kind in FACTS:
            model.apply_fact(kind, envelope["data"])
            if key := NATURAL_KEYS.get(kind):
                model.facts[(kind, envelope["data"][key])] = envelope["data"]
        model.figures["confirmed"] |= kind == "OrderConfirmed"
        model.figures["cancelled"] |= kind == "OrderCancelled"
        model.figures["completed"] |= kind == "OrderCompleted" or "OrderCompleted" in added[1:]

    # ------------------------------------------------------------ sending

    def tick(self, minutes: int = 7) -> str:
        self.clock += timedelta(minutes=minutes)
        return format_instant(self.clock)

    def send(self, envelope: dict[str, Any] | str) -> str:
        text = envelope if isinstance(envelope, str) else json.dumps(envelope)
        before = self.store_size()
        (result,) = [r for batch in self.publisher.take([(1, text)]) for r in batch]
        if isinstance(envelope, str):
            assert result.outcome == "invalid", result
            assert self.store_size() == before, "invalid input stored something"
            return result.outcome
        envelope = {**envelope, "occurred_at": format_instant(datetime.fromisoformat(envelope["occurred_at"]))}
        outcome, added = self.predict(envelope)
        assert result.outcome == outcome, f"predicted {outcome}, got {result.outcome}: {result.reason}"
        assert self.store_size() == before + len(added), f"{outcome} should add {added}"
        self.remember(envelope, outcome, added)
        if added:
            self.history.append(envelope)
            self.touched = envelope["order_id"]
            order = self.reader.read_order(self.touched)
            self.observed[self.touched][order.version] = order_view(order, self.vault)
        return outcome

    def store_size(self) -> int:
        return sum(self.reader.database.count_by_topic().values())

    # ------------------------------------------------------------ rules

    @initialize(target=orders)
    def first_order(self) -> str:
        """The first order needs confirmation, so every run meets the confirmation rules."""
        return self.submit_order(requires_confirmation=True, lines=[("SKU-A", 2, 500)])

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
    def resubmit(self, order: str) -> None:
        self.send(b.submitted(order, at=self.tick()))

    @rule(order=orders)
    def confirm(self, order: str) -> None:
        self.send(b.confirmed(order, at=self.tick()))

    @rule(order=orders, amount=AMOUNTS, payment=st.sampled_from(["P-1", "P-2", "P-3"]))
    def pay(self, order: str, amount: int, payment: str) -> None:
        self.send(b.paid(order, amount=amount, payment_id=payment, at=self.tick()))

    @rule(order=orders)
    def pay_the_rest(self, order: str) -> None:
        """What most customers do: pay exactly what is still owed, under a fresh payment id."""
        figures = self.model[order].figures
        if figures["total"] > figures["paid"]:
            owed = figures["total"] - figures["paid"]
            self.send(b.paid(order, amount=owed, payment_id=f"P-rest-{next(self.numbers)}", at=self.tick()))

    @rule(order=orders, refund=st.sampled_from(["R-1", "R-2"]), amount=AMOUNTS)
    def refund(self, order: str, refund: str, amount: int) -> None:
        self.send(b.refunded(order, amount=amount, refund_id=refund, at=self.tick()))

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

    @rule(order=orders)
    def dispatch_everything(self, order: str) -> None:
        """One shipment of every line still owed (before payment or confirmation, as happens)."""
        figures = self.model[order].figures
        owed = [(sku, qty - figures["shipped"].get(sku, 0)) for sku, qty in figures["ordered"].items()]
        lines = [(sku, qty) for sku, qty in owed if qty > 0]
        if lines:
            self.send(b.dispatched(order, lines=lines, shipment_id=f"SH-{next(self.numbers)}", at=self.tick(600)))

    @rule(order=orders)
    def deliver_everything(self, order: str) -> None:
        for shipment, delivered in list(self.model[order].shipments.items()):
            if not delivered:
                self.send(b.delivered(order, shipment_id=shipment, at=self.tick(2000)))

    @rule(order=orders, hours=st.integers(1, 72))
    def late_delivery_scan(self, order: str, hours: int) -> None:
        """A carrier's scan that arrives after later events: the engine completes at the
        latest event time, not at the scan's."""
        for shipment, delivered in list(self.model[order].shipments.items()):
            if not delivered:
                self.send(
                    b.delivered(order, shipment_id=shipment, at=format_instant(self.clock - timedelta(hours=hours)))
                )
                return

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

    @rule(order=orders)
    def correct_address(self, order: str) -> None:
        self.send(b.address_corrected(order, address={**b.ADDRESS, "line1": "2 New Road"}, at=self.tick()))

    @rule(order=orders, hours=st.integers(1, 48), amount=AMOUNTS)
    def late_payment(self, order: str, hours: int, amount: int) -> None:
        """A fact that arrives after later ones: its event time is in the past."""
        late = format_instant(self.clock - timedelta(hours=hours))
        self.send(b.paid(order, amount=amount, payment_id=f"P-late-{hours}", at=late))

    @rule(pick=st.integers(0, 10**6))
    def redeliver(self, pick: int) -> None:
        if self.history:
            self.send(self.history[pick % len(self.history)])

    @rule(pick=st.integers(0, 10**6), amount=AMOUNTS)
    def reuse_an_event_id(self, pick: int, amount: int) -> None:
        """An upstream re-uses an event id for another event: a conflict, never applied."""
        if self.history:
            earlier = self.history[pick % len(self.history)]
            self.send(b.paid(earlier["order_id"], amount=amount, payment_id="P-x", event_id=earlier["event_id"]))

    @rule(
        garbage=st.one_of(
            st.binary(max_size=40).map(lambda x: x.decode("latin-1")),
            st.just('{"event_id": "e", "type": "PaymentCaptured"'),
            st.just(json.dumps(b.paid("SO-never-submitted"))),
        )
    )
    def invalid(self, garbage: str) -> None:
        if garbage.strip():
            self.send(garbage)

    @rule(order=orders)
    def wrong_types(self, order: str) -> None:
        self.send(json.dumps(b.paid(order, amount="100")))

    # ------------------------------------------------------------ invariants

    @invariant()
    def the_touched_order_is_consistent_at_every_moment(self) -> None:
        if self.touched is None:
            return
        order_id = self.touched
        model = self.model[order_id]
        current = self.reader.read_order(order_id)
        cached = self.publisher._cache[("order", order_id)]  # the writer's in-memory state
        view = order_view(current, self.vault)
        assert view == order_view(cached, self.vault), "the store and the writer disagree"  # type: ignore[arg-type]
        records = [record.as_dict() for record in self.reader.records(Order, order_id)]
        assert [r["type"] for r in records] == model.records, "records differ from the model's"
        assert view["status"] == model.status
        assert view["financial_status"] == expected_financial_status(model.figures)
        assert (view["paid_amount"], view["refunded_amount"]) == (model.figures["paid"], model.figures["refunded"])
        completions = [r for r in records if r["event_id"].startswith(COMPLETED_BY_ENGINE)]
        for completion in completions:  # at the latest event time of what came before it
            earlier = [r["occurred_at"] for r in records if r["version"] < completion["version"]]
            assert completion["occurred_at"] == max(earlier)
        self.check_records(order_id, records)
        self.check_versions(order_id, records)
        self.check_moments(order_id, records)

    def check_records(self, order_id: str, records: list[dict[str, Any]]) -> None:
        ids = [r["event_id"] for r in records]
        assert len(ids) == len(set(ids)), "an event recorded twice"
        upstream_ids = {i for i in ids if not i.startswith(COMPLETED_BY_ENGINE)}
        assert upstream_ids == set(self.model[order_id].contents), "accepted events lost, or unaccepted ones stored"
        assert [r["version"] for r in records] == list(range(1, len(records) + 1))
        assert all(later["prev_hash"] == earlier["hash"] for earlier, later in pairwise(records))

    def check_versions(self, order_id: str, records: list[dict[str, Any]]) -> None:
        for version, seen in self.observed[order_id].items():
            assert order_view(self.reader.read_order(order_id, Moment(version=version)), self.vault) == seen
        for record in records:
            moment = record["recorded_at"]
            known = self.reader.read_order(order_id, Moment(known_at=moment))
            last = max(r["version"] for r in records if r["recorded_at"] <= moment)
            at_version = self.reader.read_order(order_id, Moment(version=last))
            assert order_view(known, self.vault) == order_view(at_version, self.vault)

    def check_moments(self, order_id: str, records: list[dict[str, Any]]) -> None:
        for moment in {r["occurred_at"] for r in records}:
            figures = fold([r for r in records if r["occurred_at"] <= moment])
            if figures is None:
                with pytest.raises(LookupError):
                    self.reader.read_order(order_id, Moment(as_of=moment))
                continue
            view = order_view(self.reader.read_order(order_id, Moment(as_of=moment)), self.vault)
            assert view["status"] == expected_status(figures)
            assert view["financial_status"] == expected_financial_status(figures)
            assert (view["paid_amount"], view["refunded_amount"]) == (figures["paid"], figures["refunded"])


STATEFUL_SETTINGS = settings(
    max_examples=40,
    stateful_step_count=30,
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
