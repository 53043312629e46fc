"""The exception queue: every exception the rules (orderlog.domain.exceptions) find, with its
owner, due time and status, and the engine's payment-timeout cancellations.

Per order the projector keeps its facts (what happened, when) and, after each batch,
re-evaluates the orders that changed and those whose next deadline the clock has passed.
The clock is the watermark: the latest event time folded, moved on by upstream events and
by `orderlog tick`. A person's acknowledgement or resolution is an event on the order's
stream, so it is a fact like any other, and the queue rebuilt from the log shows it.

OVERSOLD belongs to a SKU: the holds view keeps it (holds_by_sku.oversold_since), and the
queue's report lists it beside the orders' exceptions.

Customers' submissions are gathered across partitions (ORDER_VELOCITY), so the queue reads
the whole topic in one process.
"""

from __future__ import annotations

import heapq
import json
from datetime import datetime, timedelta
from typing import Any

import orjson

from orderlog.domain.engine import own_record
from orderlog.domain.envelope import Upstream
from orderlog.domain.exceptions import (
    CODES,
    PAYMENT_TIMEOUT_PREFIX,
    PAYMENT_TIMEOUT_REASON,
    Finding,
    Settings,
    deadlines,
    due_at,
    findings,
    new_facts,
    payment_timeout,
)
from orderlog.domain.instants import format_instant
from orderlog.domain.record import Record
from projections import generations, holds
from projections.projector import CACHE_ENTITIES, Fetch, Projector
from projections.viewstore import Table, ViewStore, integer, text

EXCEPTIONS = Table(
    "exceptions",
    (
        text("order_id"),
        text("exception_id"),
        text("code"),
        text("type"),
        text("department"),
        text("severity"),
        text("subject"),
        text("detected_at"),
        text("due_at"),
        text("status"),
        text("resolution"),
        text("resolved_at"),
        text("resolved_by"),
        text("note"),
        text("acknowledged_at"),
        text("acknowledged_by"),
        text("caused_by"),
        text("cleared_by"),
    ),
    ("order_id", "exception_id"),
    "per exception: code, owner, detected and due (event time), status, how and by whom it was resolved",
    indexes=(("exception_id",), ("status", "due_at", "department")),  # the last covers by_department
)
FACTS = Table(
    "exception_facts",
    (text("order_id"), text("facts"), text("next_deadline")),
    ("order_id",),
    "working table: each order's facts as the rules read them, and when it must be looked at again",
    working=True,
    indexes=(("next_deadline",),),
)
CUSTOMERS = Table(
    "exception_customers",
    (text("customer_id"), text("submissions"), integer("count")),
    ("customer_id",),
    "working table: each customer's recent submissions (for ORDER_VELOCITY)",
    working=True,
)
FACTS_COLUMN, DEADLINE_COLUMN = FACTS.index("facts"), FACTS.index("next_deadline")
DAY = timedelta(hours=24)


class Exceptions(Projector):
    name = "exceptions"
    tables = (EXCEPTIONS, FACTS, CUSTOMERS)
    partition_local = False  # a customer's orders are on every partition

    def __init__(self, fetch: Fetch, *, empty: bool):
        super().__init__(fetch, empty=empty)
        self.settings = Settings.from_env()
        self._facts: dict[str, dict[str, Any]] = {}
        self._touched: set[str] = set()
        self._deadlines: list[tuple[str, str]] = []
        self._commands: dict[str, Upstream] = {}
        self._issued: set[str] = set()
        self._recovered = False

    # ------------------------------------------------------------ folding

    def on_OrderSubmitted(self, record: Record) -> None:
        data, facts = record.data, self._order(record)
        lines = data["lines"]
        facts.update(
            customer_id=data["customer_id"],
            submitted=[record.occurred_at, record.event_id],
            total=data["total"],
            lines={line["sku"]: line["qty"] for line in lines},
            lines_value=sum(line["qty"] * line["unit_price"] for line in lines),
            discount=data["discount"],
            requires_confirmation=data["requires_confirmation"],
            address_valid=bool(data["shipping_address"].get("valid", True)),
        )
        facts["priced_total"] = facts["lines_value"] + data["shipping_fee"] - data["discount"]
        self._submitted_by(data["customer_id"], record)

    def on_OrderConfirmed(self, record: Record) -> None:
        self._order(record)["confirmed"] = [record.occurred_at, record.event_id]

    def on_PaymentCaptured(self, record: Record) -> None:
        payment = [record.occurred_at, record.event_id, record.data["payment_id"], record.data["amount"]]
        self._order(record)["payments"].append(payment)

    def on_PaymentFailed(self, record: Record) -> None:
        self._order(record)["failures"].append([record.occurred_at, record.event_id])

    def on_RefundIssued(self, record: Record) -> None:
        self._order(record)["refunds"].append([record.occurred_at, record.event_id, record.data["amount"]])

    def on_ShipmentDispatched(self, record: Record) -> None:
        lines: dict[str, int] = {}
        for item in record.data["lines"]:
            lines[item["sku"]] = lines.get(item["sku"], 0) + item["qty"]
        shipment = [record.occurred_at, record.event_id, record.data["shipment_id"], lines]
        self._order(record)["dispatches"].append(shipment)

    def on_ShipmentDelivered(self, record: Record) -> None:
        self._order(record)["deliveries"].setdefault(record.data["shipment_id"], [record.occurred_at, record.event_id])

    def on_DeliveryFailed(self, record: Record) -> None:
        failure = [record.occurred_at, record.event_id, record.data["shipment_id"]]
        self._order(record)["delivery_failures"].append(failure)

    def on_OrderCancelled(self, record: Record) -> None:
        self._order(record)["cancelled"] = [record.occurred_at, record.event_id]

    def on_AddressCorrected(self, record: Record) -> None:
        facts = self._order(record)
        if facts["address_fixed"] is None and record.data["shipping_address"].get("valid"):
            facts["address_fixed"] = [record.occurred_at, record.event_id]

    def on_RequestRefused(self, record: Record) -> None:
        self._order(record)["refusals"].append([record.occurred_at, record.event_id])

    def on_ConflictRecorded(self, record: Record) -> None:
        self._order(record)["conflicts"].append([record.occurred_at, record.event_id])

    def on_ExceptionAcknowledged(self, record: Record) -> None:
        self._act(record, "acknowledged")

    def on_ExceptionResolved(self, record: Record) -> None:
        self._act(record, "resolved")

    def _act(self, record: Record, kind: str) -> None:
        action = [kind, record.occurred_at, record.event_id, record.actor, record.data["note"]]
        self._order(record)["actions"].setdefault(record.data["exception_id"], []).append(action)

    # ------------------------------------------------------------ evaluating, once per batch

    def prepare(self) -> None:
        """The queue as the facts show it by the clock, for every order that changed or whose
        deadline the clock has passed; and the payment timeouts that are due."""
        now = self.watermark
        while self._deadlines and self._deadlines[0][0] <= now:
            self._touched.add(heapq.heappop(self._deadlines)[1])
        stored_due = self.scan(FACTS, "next_deadline <= ?", (now,)) if now else []
        # those in memory too (evaluating twice changes nothing), but not the ones only waiting
        # for their cancellation to be handed over: nothing about them has changed
        self._touched.update(row[0] for row in stored_due if row[0] not in self._commands)
        for order_id in sorted(self._touched):
            self._evaluate(order_id, now)
        self._touched = set()

    def take_commands(self, *, caught_up: bool) -> list[Upstream]:
        """Cancellations the engine is to record, decided only once the queue has caught up
        with its source (half-way through history, a later record may still show the order
        paid or cancelled). Each is asked for once per process; the store refuses a second
        by its event id, so a rebuilt or second queue cannot cancel twice."""
        if not caught_up:
            return []
        if not self._recovered:
            self._recover_undelivered()
        commands = []
        for order_id, command in self._commands.items():
            facts = self._load(order_id)
            if facts is not None and payment_timeout(facts, self.settings) is not None:
                commands.append(command)
                self._issued.add(order_id)
        self._commands = {}
        return commands

    def _recover_undelivered(self) -> None:
        """Cancellations decided by a process that stopped before handing them over: their
        orders are still due in the database (see _evaluate). Asked for again; the store takes
        one that was recorded after all as the duplicate it is."""
        self._recovered = True
        now = self.watermark
        for row in self.scan(FACTS, "next_deadline <= ?", (now,)) if now else []:
            facts = self._load(row[0])
            if facts is not None:
                self._time_out(facts, now)

    def _evaluate(self, order_id: str, now: str) -> None:
        facts = self._load(order_id)
        if facts is None:
            return
        rows = self.entity(EXCEPTIONS, order_id)
        found = {finding.exception_id: finding for finding in findings(facts, now, self.settings)}
        for key in [key for key in rows if key[1] not in found]:
            self.delete(EXCEPTIONS, order_id, key)
        for finding in found.values():
            rows[(order_id, finding.exception_id)] = self._row(facts, finding)
        later = min((moment for moment in deadlines(facts, self.settings) if moment > now), default=None)
        if later is not None:  # the next one only: its evaluation schedules the one after
            heapq.heappush(self._deadlines, (later, order_id))
        # A cancellation not yet handed to the engine keeps the order due in the database, so a
        # process that dies (or reloads) before handing it over leaves it to be decided again.
        self.entity(FACTS, order_id)[(order_id,)][DEADLINE_COLUMN] = self._time_out(facts, now) or later

    def _time_out(self, facts: dict[str, Any], now: str) -> str | None:
        """The payment deadline, if the order is to be cancelled for it and this process has
        not yet asked the engine to."""
        deadline = payment_timeout(facts, self.settings)
        order_id = facts["order_id"]
        if deadline is None or deadline > now or order_id in self._issued:
            return None
        self._commands[order_id] = payment_timeout_cancellation(order_id, deadline)
        return deadline

    def _row(self, facts: dict[str, Any], finding: Finding) -> list[Any]:
        code = CODES[finding.code]
        actions = facts["actions"].get(finding.exception_id, [])
        acked = next((action for action in actions if action[0] == "acknowledged"), None)
        resolved = next((action for action in actions if action[0] == "resolved"), None)
        status, resolution, resolved_at, resolved_by, note = "open", None, None, None, None
        if acked is not None:
            status = "acknowledged"
        if finding.cleared_at is not None and (resolved is None or finding.cleared_at <= resolved[1]):
            status, resolution, resolved_at = "resolved", "automatic", finding.cleared_at
        elif resolved is not None:
            status, resolution, resolved_at, resolved_by, note = (
                "resolved",
                "person",
                resolved[1],
                resolved[3],
                resolved[4],
            )
        subject = (
            f"customer {facts['customer_id']}" if finding.code == "ORDER_VELOCITY" else f"order {facts['order_id']}"
        )
        return [
            facts["order_id"],
            finding.exception_id,
            finding.code,
            code.type,
            str(code.department),
            code.severity,
            subject,
            finding.detected_at,
            due_at(finding.detected_at, finding.code, self.settings),
            status,
            resolution,
            resolved_at,
            resolved_by,
            note if note is not None else (acked[4] if acked else None),
            acked[1] if acked else None,
            acked[3] if acked else None,
            json.dumps(list(finding.caused_by)),
            finding.cleared_by,
        ]

    # ------------------------------------------------------------ facts in memory, rows in the database

    def _order(self, record: Record) -> dict[str, Any]:
        facts = self._load(record.key)
        if facts is None:
            facts = self._facts[record.key] = new_facts(record.key)
        self._touched.add(record.key)
        self.entity(FACTS, record.key)[(record.key,)] = [record.key, "", None]  # serialised at commit
        return facts

    def _load(self, order_id: str) -> dict[str, Any] | None:
        facts = self._facts.get(order_id)
        if facts is None:
            stored = self.peek(FACTS, order_id).get((order_id,))
            if stored is None or not stored[FACTS_COLUMN]:
                return None
            facts = self._facts[order_id] = orjson.loads(stored[FACTS_COLUMN])
        return facts

    def changes(self) -> list[tuple[Table, list[tuple[Any, ...]], list[list[Any]]]]:
        for row in self.entity_rows(FACTS):
            row[FACTS_COLUMN] = orjson.dumps(self._facts[row[0]]).decode()
        return super().changes()

    def committed(self) -> None:
        super().committed()
        if len(self._facts) > CACHE_ENTITIES:
            self._facts = {}
            self._deadlines = []  # orders whose deadline passes are found in the database (next_deadline)

    def forget(self) -> None:
        super().forget()
        self._facts, self._touched, self._deadlines, self._commands = {}, set(), [], {}
        self._recovered = False

    # ------------------------------------------------------------ customers (ORDER_VELOCITY)

    def _submitted_by(self, customer_id: str, record: Record) -> None:
        """Re-counts the customer's submissions around this one; an order is flagged when more
        than the limit fall in the 24 h up to and including it (event time)."""
        rows = self.entity(CUSTOMERS, customer_id)
        row = rows.setdefault((customer_id,), [customer_id, "[]", 0])
        submissions = sorted([*json.loads(row[1]), [record.occurred_at, record.key]])
        horizon = _shifted(submissions[-1][0], -2 * DAY)  # the customer's own newest, not the clock:
        submissions = [entry for entry in submissions if entry[0] >= horizon]  # the same whatever the arrival order
        row[1], row[2] = json.dumps(submissions, separators=(",", ":")), len(submissions)
        reach = _shifted(record.occurred_at, DAY)
        for at, order_id in submissions:
            if record.occurred_at <= at <= reach:
                within = sum(1 for other, _ in submissions if _shifted(at, -DAY) < other <= at)
                self._flag(order_id, within > self.settings.velocity_limit)

    def _flag(self, order_id: str, flagged: bool) -> None:
        facts = self._load(order_id)
        if facts is None or bool(facts["velocity"]) == flagged:
            return
        facts["velocity"] = flagged
        self._touched.add(order_id)
        self.entity(FACTS, order_id)[(order_id,)] = [order_id, "", None]


def payment_timeout_cancellation(order_id: str, deadline: str) -> Upstream:
    """The engine's cancellation of an order left unpaid past its deadline, at the deadline."""
    data = {"reason_code": PAYMENT_TIMEOUT_REASON, "initiated_by": "system", "note": ""}
    return own_record(
        "OrderCancelled", order_id, data, None, event_id=f"{PAYMENT_TIMEOUT_PREFIX}{order_id}", occurred_at=deadline
    )


def _shifted(instant: str, delta: timedelta) -> str:
    return format_instant(datetime.fromisoformat(instant) + delta)


STATUSES = {
    "open": ("open",),
    "acknowledged": ("acknowledged",),
    "resolved": ("resolved",),
    "active": ("open", "acknowledged"),
    "all": ("open", "acknowledged", "resolved"),
}
"""What `exceptions list --status` selects; `active` (open or acknowledged) is what people work."""


def built(views: ViewStore) -> bool:
    """Whether the queue can be read here (its projector has run at least once)."""
    return views.has(EXCEPTIONS.name)


def clock(views: ViewStore) -> str:
    """The queue's clock: the latest event time its live generation has folded."""
    generation = generations.live_generation(views, Exceptions)
    return "" if generation is None else generations.watermark(views, Exceptions, generation)


def queue(
    views: ViewStore,
    *,
    status: str = "active",
    code: str | None = None,
    kind: str | None = None,
    department: str | None = None,
    overdue: bool = False,
    order_id: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """The queue, overdue first, then by due time: the orders' exceptions, and the SKUs
    oversold. The filters and the order run in the database, so a page of a long queue
    reads only up to that page (`offset`, `limit`)."""
    now = clock(views)
    wanted = {"code": code, "type": kind, "department": department, "order_id": order_id}
    statuses = STATUSES[status]
    reach = None if limit is None else offset + limit
    items = _order_exceptions(views, statuses, wanted, now, overdue=overdue, limit=reach)
    if order_id is None:
        items += _oversold(views, statuses, wanted, now, overdue=overdue, limit=reach)
    chosen = sorted(
        (_with_overdue(item, now) for item in items),
        key=lambda item: (not item["overdue"], item["due_at"], item["exception_id"]),
    )
    return chosen[offset:reach]


def one(views: ViewStore, exception_id: str) -> dict[str, Any] | None:
    now = clock(views)
    if exception_id.startswith("OVERSOLD:"):
        found = _oversold(views, STATUSES["all"], {"sku": exception_id.removeprefix("OVERSOLD:")}, now)
    else:
        found = _order_exceptions(views, STATUSES["all"], {"exception_id": exception_id}, now)
    return _with_overdue(found[0], now) if found else None


def _with_overdue(item: dict[str, Any], now: str) -> dict[str, Any]:
    return {**item, "overdue": item["status"] != "resolved" and bool(now) and item["due_at"] < now}


def by_department(views: ViewStore) -> list[dict[str, Any]]:
    """Open (and acknowledged) exceptions per department, with how many are overdue: counted
    in the database, so the figure costs the same however long the queue is."""
    now = clock(views)
    counts: dict[str, dict[str, Any]] = {}
    if views.has(EXCEPTIONS.name):
        active = STATUSES["active"]
        rows = views.rows(
            "SELECT department, COUNT(*) AS active, SUM(CASE WHEN due_at < ? THEN 1 ELSE 0 END) AS overdue "
            f"FROM {EXCEPTIONS.name} WHERE status IN ({', '.join('?' * len(active))}) GROUP BY department",
            [now, *active],
        )
        counts = {row["department"]: {**row, "overdue": int(row["overdue"] or 0) if now else 0} for row in rows}
    for item in _oversold(views, STATUSES["active"], {}, now):
        row = counts.setdefault(item["department"], {"department": item["department"], "active": 0, "overdue": 0})
        row["active"] += 1
        row["overdue"] += int(bool(now) and item["due_at"] < now)
    return sorted(counts.values(), key=lambda row: (-row["overdue"], -row["active"], row["department"]))


def _order_exceptions(
    views: ViewStore,
    statuses: tuple[str, ...],
    wanted: dict[str, str | None],
    now: str,
    *,
    overdue: bool = False,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The first `limit` of each status by due time. Within one status, due time orders as
    the queue does (overdue first: for an active exception, overdue is due before the
    clock; a resolved one is never overdue), so each status walks its (status, due_at)
    index and stops at `limit` rather than sorting the whole queue; `queue` merges them.
    One order's (or one exception) is read by its key instead: walking the due-time index
    for a handful of rows would read every exception of the status."""
    if not views.has(EXCEPTIONS.name):
        return []
    if wanted.get("order_id") is not None or wanted.get("exception_id") is not None:
        by_status, limit = [statuses], None  # a few rows, found by their key: read at once
    else:
        by_status = [(status,) for status in statuses]
    rows = []
    for chosen in by_status:
        where, parameters = _where(chosen, wanted, now, overdue)
        statement = (
            f"SELECT {', '.join(EXCEPTIONS.names)} FROM {EXCEPTIONS.name} WHERE {where} "
            "ORDER BY due_at, exception_id" + ("" if limit is None else f" LIMIT {int(limit)}")
        )
        rows += views.rows(statement, parameters)
    for row in rows:
        row["caused_by"] = json.loads(row["caused_by"])
    return rows


def _where(statuses: tuple[str, ...], wanted: dict[str, str | None], now: str, overdue: bool) -> tuple[str, list[Any]]:
    clauses = [f"status IN ({', '.join('?' * len(statuses))})"]
    parameters: list[Any] = list(statuses)
    for column, value in wanted.items():
        if value is not None:
            clauses.append(f"{column} = ?")
            parameters.append(value)
    if overdue:
        clauses.append("status <> 'resolved' AND due_at < ?")
        parameters.append(now)
    return " AND ".join(clauses), parameters


def _oversold(
    views: ViewStore,
    statuses: tuple[str, ...],
    wanted: dict[str, str | None],
    now: str,
    *,
    overdue: bool = False,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """OVERSOLD, from the holds view: open while available < 0 (it has no history of its own)."""
    code = CODES["OVERSOLD"]
    chosen = {"code": code.code, "type": code.type, "department": str(code.department)}
    if "open" not in statuses or not holds.built(views):
        return []
    if any(wanted.get(column) not in (None, value) for column, value in chosen.items()):
        return []
    settings = Settings.from_env()
    sku = wanted.get("sku")
    rows = views.rows(
        f"SELECT sku, available, oversold_since, oversold_event FROM {holds.BY_SKU.name} WHERE available < 0"
        + (" AND sku = ?" if sku is not None else "")
        + " ORDER BY oversold_since, sku"
        + ("" if limit is None else f" LIMIT {int(limit)}"),
        [sku] if sku is not None else [],
    )
    items = [
        {
            "order_id": None,
            "exception_id": f"OVERSOLD:{row['sku']}",
            "code": "OVERSOLD",
            "type": code.type,
            "department": str(code.department),
            "severity": code.severity,
            "subject": f"sku {row['sku']} (available {row['available']})",
            "detected_at": row["oversold_since"],
            "due_at": due_at(row["oversold_since"], "OVERSOLD", settings),
            "status": "open",
            "resolution": None,
            "resolved_at": None,
            "resolved_by": None,
            "note": None,
            "acknowledged_at": None,
            "acknowledged_by": None,
            "caused_by": [row["oversold_event"]],
            "cleared_by": None,
        }
        for row in rows
    ]
    return [item for item in items if not overdue or (bool(now) and item["due_at"] < now)]


def headline(views: ViewStore) -> str:
    departments = by_department(views)
    if not departments:
        return "no open exceptions"
    parts = [f"{row['department']} {row['active']:,} ({row['overdue']:,} overdue)" for row in departments]
    return f"open by department: {', '.join(parts)}"
