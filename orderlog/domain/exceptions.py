"""The exception queue's rules: which facts open an exception, which close it, who owns it.

Everything here is decided on event time. An order's facts (its payments, refunds,
dispatches, deliveries, cancellation, refusals, human actions...) are kept with the time
each happened, and `findings` evaluates them in event-time order against a clock (the
projector's watermark): the same facts and the same clock give the same queue, whatever
order the records arrived in, so a replay re-opens, escalates and closes exactly what the
live run did. Deadlines (a payment timeout, a refund overdue, a shipment delayed, a
delivery overdue) open an exception only once the clock has passed them.

No I/O: the projector (projections/exceptions.py) feeds facts in and writes findings out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

from orderlog.domain.instants import format_instant


class Department(StrEnum):
    FINANCE = "finance"
    CUSTOMER_SERVICE = "customer_service"
    WAREHOUSE = "warehouse"
    LOGISTICS = "logistics"
    OPERATIONS = "operations"
    RISK = "risk"
    ENGINEERING = "engineering"


@dataclass(frozen=True)
class Code:
    code: str
    type: str
    department: Department
    sla_hours: float
    severity: str
    opens_when: str
    clears_when: str | None
    """None: it never clears by itself; a person resolves it."""


CODES: dict[str, Code] = {
    c.code: c
    for c in (
        Code("PAYMENT_DUPLICATE", "payment", Department.FINANCE, 4, "high",
             "a second capture (another payment id) of an earlier amount takes paid above the total",
             "refunds bring paid - refunded to <= total"),
        Code("PAYMENT_OVERPAID", "payment", Department.FINANCE, 4, "medium", "paid > total",
             "refunds bring paid - refunded to <= total"),
        Code("PAYMENT_AFTER_CANCEL", "payment", Department.FINANCE, 4, "high",
             "a payment is captured after cancellation", "refunded"),
        Code("PAYMENT_FAILED_REPEATEDLY", "payment", Department.CUSTOMER_SERVICE, 24, "low",
             "3 failures without a capture", "captured or cancelled"),
        Code("REFUND_OVERDUE", "payment", Department.FINANCE, 4, "medium",
             "cancelled with money kept 24 h after cancellation", "refunded"),
        Code("REFUND_EXCEEDS_PAID", "payment", Department.FINANCE, 4, "high", "refunded > paid", None),
        Code("OVERSOLD", "inventory", Department.WAREHOUSE, 2, "high", "an SKU's available < 0", "available >= 0"),
        Code("OVER_SHIPPED", "inventory", Department.WAREHOUSE, 24, "medium",
             "more dispatched than ordered, or an SKU not on the order", None),
        Code("SHIPMENT_DELAYED", "logistics", Department.LOGISTICS, 24, "medium",
             "fully paid, not fully dispatched 48 h later", "fully dispatched or cancelled"),
        Code("DELIVERY_OVERDUE", "logistics", Department.LOGISTICS, 48, "low",
             "dispatched, not delivered 7 days later", "delivered"),
        Code("DELIVERY_FAILED", "logistics", Department.LOGISTICS, 24, "medium",
             "a carrier reports a failure", "that shipment delivered, or the order refunded"),
        Code("SHIPPED_AFTER_CANCEL", "logistics", Department.LOGISTICS, 4, "high",
             "dispatched after cancellation", None),
        Code("ADDRESS_INVALID", "information", Department.CUSTOMER_SERVICE, 24, "low",
             "address or phone missing or malformed at submission", "a valid AddressCorrected"),
        Code("TOTAL_MISMATCH", "pricing", Department.OPERATIONS, 4, "medium",
             "total != sum of qty x unit_price + shipping_fee - discount", None),
        Code("BELOW_PRICE_FLOOR", "pricing", Department.OPERATIONS, 4, "medium",
             "discount above the price floor's share of the lines' value", None),
        Code("ORDER_VELOCITY", "risk", Department.RISK, 4, "medium",
             "a customer submits more than the limit of orders in 24 h", None),
        Code("SHIPPED_BEFORE_PAID", "system", Department.FINANCE, 24, "medium", "dispatched while not fully paid",
             "fully paid"),
        Code("REQUEST_REFUSED", "system", Department.ENGINEERING, 24, "low",
             "a request refused by the lifecycle", None),
        Code("DATA_CONFLICT", "system", Department.ENGINEERING, 4, "high",
             "a fact contradicts an earlier one with the same natural key", None),
    )
}  # fmt: skip

PAYMENT_TIMEOUT_REASON = "PAYMENT_TIMEOUT"
PAYMENT_TIMEOUT_PREFIX = "orderlog/payment-timeout/"
"""The event id of the engine's payment-timeout cancellation of an order: one per order, so
it is recorded once however many times the queue is rebuilt or run."""


@dataclass(frozen=True)
class Settings:
    """What an operations team tunes: SLAs per code, and the thresholds of the pricing and risk rules."""

    sla_hours: Mapping[str, float] = field(default_factory=lambda: {code: c.sla_hours for code, c in CODES.items()})
    price_floor: float = 0.5
    """BELOW_PRICE_FLOOR: a discount above this share of the lines' value."""
    velocity_limit: int = 20
    """ORDER_VELOCITY: more orders than this from one customer within 24 h."""
    payment_timeout: timedelta = timedelta(minutes=30)
    confirmed_payment_timeout: timedelta = timedelta(hours=72)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """ORDERLOG_SLA="OVERSOLD=1h,PAYMENT_DUPLICATE=30m", ORDERLOG_PRICE_FLOOR=0.5,
        ORDERLOG_VELOCITY_LIMIT=20; ValueError naming what is wrong."""
        env = os.environ if env is None else env
        hours = {code: c.sla_hours for code, c in CODES.items()}
        for part in filter(None, (piece.strip() for piece in env.get("ORDERLOG_SLA", "").split(","))):
            code, _, duration = part.partition("=")
            if code.strip() not in CODES:
                raise ValueError(f"ORDERLOG_SLA: {code.strip()!r} is not an exception code (one of {', '.join(CODES)})")
            hours[code.strip()] = _hours(duration.strip(), f"ORDERLOG_SLA {code.strip()}")
        try:
            floor = float(env.get("ORDERLOG_PRICE_FLOOR", "0.5"))
            limit = int(env.get("ORDERLOG_VELOCITY_LIMIT", "20"))
        except ValueError:
            raise ValueError("ORDERLOG_PRICE_FLOOR must be a number, ORDERLOG_VELOCITY_LIMIT a whole number") from None
        return cls(sla_hours=hours, price_floor=floor, velocity_limit=limit)


def _hours(text: str, what: str) -> float:
    units = {"m": 1 / 60, "h": 1, "d": 24}
    try:
        value = float(text[:-1])
        return value * units[text[-1]]
    except (ValueError, KeyError, IndexError):
        raise ValueError(f"{what}: {text!r} is not a duration such as 30m, 4h or 2d") from None


@dataclass(frozen=True)
class Finding:
    """An exception as the facts show it: when it opened, what caused it, and whether (and by
    what) it cleared, by the clock it was evaluated against."""

    exception_id: str
    code: str
    detected_at: str
    caused_by: tuple[str, ...]
    cleared_at: str | None = None
    cleared_by: str | None = None


Moment = tuple[str, str]
"""(event time, event id): sorted, the order things happened in, ties broken the same way everywhere."""


def new_facts(order_id: str) -> dict[str, Any]:
    """An order's facts as the queue keeps them: plain JSON, so they can be stored between batches."""
    return {
        "order_id": order_id,
        "customer_id": None,
        "submitted": None,
        "total": 0,
        "lines": {},
        "priced_total": None,
        "lines_value": 0,
        "discount": 0,
        "requires_confirmation": False,
        "confirmed": None,
        "address_valid": True,
        "address_fixed": None,
        "payments": [],
        "failures": [],
        "refunds": [],
        "dispatches": [],
        "deliveries": {},
        "delivery_failures": [],
        "cancelled": None,
        "refusals": [],
        "conflicts": [],
        "velocity": None,
        "actions": {},
    }


class Evaluation:
    """One order's facts read against the clock, with what several rules need worked out once."""

    def __init__(self, facts: dict[str, Any], now: str, settings: Settings):
        self.facts, self.now, self.settings = facts, now, settings
        self.money = list(_money(facts))
        self.paid_in_full = next(
            (m for m, paid, _r, what in self.money if what == "payment" and paid >= facts["total"]), None
        )


def findings(facts: dict[str, Any], now: str, settings: Settings) -> list[Finding]:
    """Every exception the order's facts show by the clock `now` (event time)."""
    if facts["submitted"] is None:
        return []
    evaluation = Evaluation(facts, now, settings)
    return [found for rule in RULES for found in rule(evaluation)]


def payment_timeout(facts: dict[str, Any], settings: Settings) -> str | None:
    """When an unpaid order is to be cancelled by the engine; None if it is not: paid or
    cancelled (at any time known: a queue that catches up on history cancels nothing that was
    settled since), or awaiting a confirmation that has not come."""
    if facts["submitted"] is None or facts["payments"] or facts["cancelled"] is not None:
        return None
    if facts["requires_confirmation"]:
        if facts["confirmed"] is None:
            return None
        deadline = _after(facts["confirmed"][0], settings.confirmed_payment_timeout)
    else:
        deadline = _after(facts["submitted"][0], settings.payment_timeout)
    return deadline


def deadlines(facts: dict[str, Any], settings: Settings) -> list[str]:
    """The moments at which the order's findings may change without a record of its own: the
    queue re-evaluates it when its clock passes each."""
    found = [moment for moment in (payment_timeout(facts, settings),) if moment]
    if facts["cancelled"] is not None:
        found.append(_after(facts["cancelled"][0], timedelta(hours=24)))
    paid_in_full = _paid_in_full(list(_money(facts)), facts["total"])
    if paid_in_full is not None:
        found.append(_after(paid_in_full[0], timedelta(hours=48)))
    found += [_after(dispatch[0], timedelta(days=7)) for dispatch in facts["dispatches"]]
    return found


# ------------------------------------------------------------------ the rules, one per code


def _money(facts: dict[str, Any]) -> Iterator[tuple[Moment, int, int, str]]:
    """(moment, paid, refunded, what) after each payment or refund, in event-time order."""
    changes = [((p[0], p[1]), p[3], 0, "payment") for p in facts["payments"]]
    changes += [((r[0], r[1]), 0, r[2], "refund") for r in facts["refunds"]]
    paid = refunded = 0
    for moment, payment, refund, what in sorted(changes):
        paid += payment
        refunded += refund
        yield moment, paid, refunded, what


def _overpayment(e: Evaluation) -> list[Finding]:
    facts = e.facts
    total, order = facts["total"], facts["order_id"]
    amounts: dict[int, str] = {}
    opened: Finding | None = None
    payments = {(p[0], p[1]): p for p in facts["payments"]}
    for moment, paid, refunded, what in e.money:
        if opened is None and what == "payment" and paid > total:
            amount = payments[moment][3]
            if amount in amounts:
                opened = Finding(
                    f"PAYMENT_DUPLICATE:{order}", "PAYMENT_DUPLICATE", moment[0], (amounts[amount], moment[1])
                )
            else:
                opened = Finding(f"PAYMENT_OVERPAID:{order}", "PAYMENT_OVERPAID", moment[0], (moment[1],))
        elif opened is not None and paid - refunded <= total:
            return [_cleared(opened, moment)]
        if what == "payment":
            amounts.setdefault(payments[moment][3], moment[1])
    return [opened] if opened else []


def _payment_after_cancel(e: Evaluation) -> list[Finding]:
    facts = e.facts
    cancelled = facts["cancelled"]
    if cancelled is None:
        return []
    opened: Finding | None = None
    for moment, paid, refunded, what in e.money:
        if opened is None and what == "payment" and moment > tuple(cancelled):
            order = facts["order_id"]
            opened = Finding(
                f"PAYMENT_AFTER_CANCEL:{order}", "PAYMENT_AFTER_CANCEL", moment[0], (cancelled[1], moment[1])
            )
        elif opened is not None and refunded >= paid:
            return [_cleared(opened, moment)]
    return [opened] if opened else []


def _failed_repeatedly(e: Evaluation) -> list[Finding]:
    facts = e.facts
    events = sorted(
        [((f[0], f[1]), "failure") for f in facts["failures"]] + [((p[0], p[1]), "capture") for p in facts["payments"]]
    )
    if facts["cancelled"] is not None:
        events = sorted([*events, (tuple(facts["cancelled"]), "cancel")])
    failures: list[str] = []
    opened: Finding | None = None
    for moment, what in events:
        if opened is not None and what in ("capture", "cancel"):
            return [_cleared(opened, moment)]
        if what == "capture":
            failures = []
        elif what == "failure" and opened is None:
            failures.append(moment[1])
            if len(failures) >= 3:
                order = facts["order_id"]
                opened = Finding(
                    f"PAYMENT_FAILED_REPEATEDLY:{order}", "PAYMENT_FAILED_REPEATEDLY", moment[0], tuple(failures)
                )
    return [opened] if opened else []


def _refund_overdue(e: Evaluation) -> list[Finding]:
    facts, now = e.facts, e.now
    cancelled = facts["cancelled"]
    if cancelled is None:
        return []
    deadline = _after(cancelled[0], timedelta(hours=24))
    if now < deadline:
        return []
    kept = False
    for moment, paid, refunded, _what in e.money:
        if moment[0] <= deadline:
            kept = paid - refunded > 0
        elif kept and paid - refunded <= 0:
            return [_cleared(_refund_overdue_finding(facts, deadline), moment)]
    return [_refund_overdue_finding(facts, deadline)] if kept else []


def _refund_overdue_finding(facts: dict[str, Any], deadline: str) -> Finding:
    order = facts["order_id"]
    return Finding(f"REFUND_OVERDUE:{order}", "REFUND_OVERDUE", deadline, (facts["cancelled"][1],))


def _refund_exceeds_paid(e: Evaluation) -> list[Finding]:
    facts = e.facts
    for moment, paid, refunded, what in e.money:
        if what == "refund" and refunded > paid:
            order = facts["order_id"]
            return [Finding(f"REFUND_EXCEEDS_PAID:{order}", "REFUND_EXCEEDS_PAID", moment[0], (moment[1],))]
    return []


def _over_shipped(e: Evaluation) -> list[Finding]:
    facts = e.facts
    shipped: dict[str, int] = {}
    for dispatch in sorted(facts["dispatches"]):
        for sku, qty in sorted(dispatch[3].items()):
            shipped[sku] = shipped.get(sku, 0) + qty
            if shipped[sku] > facts["lines"].get(sku, 0):
                order = facts["order_id"]
                return [Finding(f"OVER_SHIPPED:{order}", "OVER_SHIPPED", dispatch[0], (dispatch[1],))]
    return []


def _shipment_delayed(e: Evaluation) -> list[Finding]:
    facts, now = e.facts, e.now
    if e.paid_in_full is None:
        return []
    deadline = _after(e.paid_in_full[0], timedelta(hours=48))
    done = _dispatched_in_full_at(facts)
    cancelled = tuple(facts["cancelled"]) if facts["cancelled"] else None
    ended = min((moment for moment in (done, cancelled) if moment is not None), default=None)
    if now < deadline or (ended is not None and ended[0] <= deadline):
        return []
    order = facts["order_id"]
    found = Finding(f"SHIPMENT_DELAYED:{order}", "SHIPMENT_DELAYED", deadline, (facts["submitted"][1],))
    return [_cleared(found, ended) if ended is not None else found]


def _delivery_overdue(e: Evaluation) -> list[Finding]:
    facts, now = e.facts, e.now
    found = []
    for dispatch in facts["dispatches"]:
        deadline = _after(dispatch[0], timedelta(days=7))
        delivered = facts["deliveries"].get(dispatch[2])
        if now < deadline or (delivered is not None and delivered[0] <= deadline):
            continue
        order = facts["order_id"]
        finding = Finding(f"DELIVERY_OVERDUE:{order}:{dispatch[2]}", "DELIVERY_OVERDUE", deadline, (dispatch[1],))
        found.append(_cleared(finding, tuple(delivered)) if delivered is not None else finding)
    return found


def _delivery_failed(e: Evaluation) -> list[Finding]:
    facts = e.facts
    found = []
    refunded_in_full = next((m for m, paid, refunded, _ in e.money if paid > 0 and refunded >= paid), None)
    for failure in sorted(facts["delivery_failures"]):
        order, shipment = facts["order_id"], failure[2]
        finding = Finding(f"DELIVERY_FAILED:{order}:{failure[1]}", "DELIVERY_FAILED", failure[0], (failure[1],))
        delivered = facts["deliveries"].get(shipment)
        ends = [tuple(moment) for moment in (delivered, refunded_in_full) if moment is not None]
        ends = [moment for moment in ends if moment > (failure[0], failure[1])]
        found.append(_cleared(finding, min(ends)) if ends else finding)
    return found


def _shipped_after_cancel(e: Evaluation) -> list[Finding]:
    facts = e.facts
    cancelled = facts["cancelled"]
    late = [d for d in sorted(facts["dispatches"]) if cancelled is not None and (d[0], d[1]) > tuple(cancelled)]
    if not late:
        return []
    order = facts["order_id"]
    return [Finding(f"SHIPPED_AFTER_CANCEL:{order}", "SHIPPED_AFTER_CANCEL", late[0][0], (cancelled[1], late[0][1]))]


def _address_invalid(e: Evaluation) -> list[Finding]:
    facts = e.facts
    if facts["address_valid"]:
        return []
    order = facts["order_id"]
    found = Finding(f"ADDRESS_INVALID:{order}", "ADDRESS_INVALID", facts["submitted"][0], (facts["submitted"][1],))
    return [_cleared(found, tuple(facts["address_fixed"])) if facts["address_fixed"] else found]


def _pricing(e: Evaluation) -> list[Finding]:
    facts, settings = e.facts, e.settings
    order, (at, event_id) = facts["order_id"], facts["submitted"]
    found = []
    if facts["priced_total"] != facts["total"]:
        found.append(Finding(f"TOTAL_MISMATCH:{order}", "TOTAL_MISMATCH", at, (event_id,)))
    if facts["discount"] > settings.price_floor * facts["lines_value"]:
        found.append(Finding(f"BELOW_PRICE_FLOOR:{order}", "BELOW_PRICE_FLOOR", at, (event_id,)))
    return found


def _velocity(e: Evaluation) -> list[Finding]:
    facts = e.facts
    if not facts["velocity"]:
        return []
    order, (at, event_id) = facts["order_id"], facts["submitted"]
    return [Finding(f"ORDER_VELOCITY:{order}", "ORDER_VELOCITY", at, (event_id,))]


def _shipped_before_paid(e: Evaluation) -> list[Finding]:
    facts = e.facts
    dispatches = sorted(facts["dispatches"])
    if not dispatches:
        return []
    first = (dispatches[0][0], dispatches[0][1])
    paid_before = sum(p[3] for p in facts["payments"] if (p[0], p[1]) < first)
    if paid_before >= facts["total"]:
        return []
    order = facts["order_id"]
    found = Finding(f"SHIPPED_BEFORE_PAID:{order}", "SHIPPED_BEFORE_PAID", first[0], (first[1],))
    return [_cleared(found, e.paid_in_full) if e.paid_in_full is not None else found]


def _one_per_record(code: str, name: str) -> Any:
    def rule(e: Evaluation) -> list[Finding]:
        facts = e.facts
        order = facts["order_id"]
        return [Finding(f"{code}:{order}:{event_id}", code, at, (event_id,)) for at, event_id in sorted(facts[name])]

    return rule


RULES = (
    _overpayment,
    _payment_after_cancel,
    _failed_repeatedly,
    _refund_overdue,
    _refund_exceeds_paid,
    _over_shipped,
    _shipment_delayed,
    _delivery_overdue,
    _delivery_failed,
    _shipped_after_cancel,
    _address_invalid,
    _pricing,
    _velocity,
    _shipped_before_paid,
    _one_per_record("REQUEST_REFUSED", "refusals"),
    _one_per_record("DATA_CONFLICT", "conflicts"),
)
"""Every order rule (OVERSOLD is the SKU's: the holds view keeps it)."""


def _cleared(found: Finding, moment: Moment | tuple[str, ...]) -> Finding:
    return Finding(found.exception_id, found.code, found.detected_at, found.caused_by, moment[0], moment[1])


def _paid_in_full(money: list[tuple[Moment, int, int, str]], total: int) -> Moment | None:
    """The payment that made the order paid in full, if one did."""
    return next((moment for moment, paid, _refunded, what in money if what == "payment" and paid >= total), None)


def _dispatched_in_full_at(facts: dict[str, Any]) -> Moment | None:
    shipped: dict[str, int] = {}
    for dispatch in sorted(facts["dispatches"]):
        for sku, qty in dispatch[3].items():
            shipped[sku] = shipped.get(sku, 0) + qty
        if all(shipped.get(sku, 0) >= qty for sku, qty in facts["lines"].items()):
            return (dispatch[0], dispatch[1])
    return None


@lru_cache(maxsize=200_000)
def _after(instant: str, delta: timedelta) -> str:
    """`instant` moved on by `delta` (cached: an order's instants are re-read at every evaluation)."""
    return format_instant(datetime.fromisoformat(instant) + delta)


def due_at(detected_at: str, code: str, settings: Settings) -> str:
    return _after(detected_at, timedelta(hours=settings.sla_hours[code]))
