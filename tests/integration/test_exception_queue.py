"""The exception queue through the store and the projector, as `orderlog project` runs it:
each code opened by the records that show it and cleared by those that clear it (or by a
person), due by its SLA, deadlines passed only by the queue's clock (the watermark: upstream
events and ticks), the engine's payment-timeout cancellations recorded in the store once,
people's actions in the order's history; and the same queue however it is built
(incrementally, by a replay, from Kafka)."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from orderlog.bootstrap import open_orderlog
from orderlog.domain.exceptions import CODES, PAYMENT_TIMEOUT_PREFIX
from orderlog.domain.instants import format_instant, parse_instant
from orderlog.domain.order import Order
from orderlog.domain.record import Record
from orderlog.domain.status import Status
from orderlog.queue_actions import QueueActionError, act_on_exception, tick
from orderlog.simulate import simulate
from projections import exceptions as queue_view
from projections.exceptions import EXCEPTIONS, Exceptions, payment_timeout_cancellation
from projections.holds import Holds
from projections.runner import Runner
from projections.service import project, record_decisions, replay
from projections.sources import LogSource
from projections.viewstore import ViewStore
from tests import builders as b
from tests.integration.test_read_models_kafka import fold_from_kafka, fresh_views, publish, relay
from tests.kafka_helpers import kafka_config
from tests.read_models import ListSource, Scene, batch_of

T0 = parse_instant("2026-03-01T10:00:00Z")


def t(*, days: float = 0, hours: float = 0, minutes: float = 0, ms: int = 0) -> str:
    """An event time, so long after 2026-03-01 10:00 UTC, as the store writes it."""
    return format_instant(T0 + timedelta(days=days, hours=hours, minutes=minutes, milliseconds=ms))


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    scene = Scene(tmp_path)
    yield scene
    scene.close()


def run(scene: Scene, *, views: ViewStore | None = None, batch: int = 5_000, source: Any = None) -> None:
    """`orderlog project --once` as it runs the queue: holds beside it (OVERSOLD is theirs), and
    the engine recording the payment timeouts the queue decides."""
    source = source or LogSource(scene.app.log_reader, batch=batch)
    project(views or scene.views, [Holds, Exceptions], source, follow=False, engine=scene.app)


def items(scene: Scene, views: ViewStore | None = None, **filters: Any) -> dict[str, dict[str, Any]]:
    """Every exception in the queue (all statuses), by id."""
    return {item["exception_id"]: item for item in queue_view.queue(views or scene.views, status="all", **filters)}


def rows(views: ViewStore) -> list[tuple[Any, ...]]:
    """The queue's table as readers see it, in key order."""
    return [tuple(row) for row in views.query(f"SELECT * FROM {EXCEPTIONS.name} ORDER BY order_id, exception_id")]


def timeout_records(scene: Scene) -> list[Record]:
    """Every record the engine made for a payment timeout (a cancellation, or its refusal)."""
    return [record for _position, record in scene.records() if record.event_id.startswith(PAYMENT_TIMEOUT_PREFIX)]


def clock_to(scene: Scene, at: str) -> None:
    """An upstream record that says nothing about any order (a stock count): only the clock moves."""
    scene.publish(b.stock_counted("SKU-CLOCK", 1, at=at))


def order(**fields: Any) -> dict[str, Any]:
    """SO-1: 2 x SKU-A at 5.00, total 10.00, submitted at T0 (event s1)."""
    return b.submitted("SO-1", event_id="s1", at=t(), **fields)


class Scenario(NamedTuple):
    opening: list[dict[str, Any]]
    detected_at: str
    caused_by: list[str]
    later: list[dict[str, Any]]
    """Records that clear it (a code that clears by itself), or that change nothing for one that never does."""
    cleared_at: str | None = None
    cleared_by: str | None = None
    tick_to: str | None = None
    """Where the clock must be for the exception to open (a deadline), moved by a tick."""
    exception_id: str = "{code}:SO-1"


SCENARIOS: dict[str, Scenario] = {
    "PAYMENT_DUPLICATE": Scenario(
        [
            order(),
            b.paid("SO-1", 1000, "P-1", event_id="p1", at=t(minutes=5)),
            b.paid("SO-1", 1000, "P-2", event_id="p2", at=t(minutes=6)),
        ],
        t(minutes=6),
        ["p1", "p2"],
        [b.refunded("SO-1", 1000, "R-1", event_id="r1", at=t(hours=1))],
        t(hours=1),
        "r1",
    ),
    "PAYMENT_OVERPAID": Scenario(
        [
            order(),
            b.paid("SO-1", 1000, "P-1", event_id="p1", at=t(minutes=5)),
            b.paid("SO-1", 300, "P-2", event_id="p2", at=t(minutes=9)),
        ],
        t(minutes=9),
        ["p2"],
        [b.refunded("SO-1", 300, "R-1", event_id="r1", at=t(hours=1))],
        t(hours=1),
        "r1",
    ),
    "PAYMENT_AFTER_CANCEL": Scenario(
        [
            order(),
            b.cancelled("SO-1", event_id="c1", at=t(minutes=10)),
            b.paid("SO-1", 1000, event_id="p1", at=t(minutes=20)),
        ],
        t(minutes=20),
        ["c1", "p1"],
        [b.refunded("SO-1", 1000, event_id="r1", at=t(hours=2))],
        t(hours=2),
        "r1",
    ),
    "PAYMENT_FAILED_REPEATEDLY": Scenario(
        [order(), *(b.payment_failed("SO-1", event_id=f"f{n}", at=t(minutes=n)) for n in (1, 2, 3))],
        t(minutes=3),
        ["f1", "f2", "f3"],
        [b.paid("SO-1", 1000, event_id="p1", at=t(minutes=10))],
        t(minutes=10),
        "p1",
    ),
    "REFUND_OVERDUE": Scenario(
        [
            order(),
            b.paid("SO-1", 1000, event_id="p1", at=t(minutes=5)),
            b.cancelled("SO-1", event_id="c1", at=t(hours=1)),
        ],
        t(hours=25),
        ["c1"],
        [b.refunded("SO-1", 1000, event_id="r1", at=t(hours=30))],
        t(hours=30),
        "r1",
        tick_to=t(hours=25),
    ),
    "REFUND_EXCEEDS_PAID": Scenario(
        [
            order(),
            b.paid("SO-1", 1000, event_id="p1", at=t(minutes=5)),
            b.refunded("SO-1", 1500, event_id="r1", at=t(minutes=10)),
        ],
        t(minutes=10),
        ["r1"],
        [b.paid("SO-1", 500, "P-2", event_id="p2", at=t(minutes=20))],
    ),
    "OVER_SHIPPED": Scenario(
        [
            order(),
            b.paid("SO-1", 1000, event_id="p1", at=t(minutes=5)),
            b.dispatched("SO-1", [("SKU-A", 3)], event_id="d1", at=t(hours=1)),
        ],
        t(hours=1),
        ["d1"],
        [b.delivered("SO-1", event_id="v1", at=t(hours=20))],
    ),
    "SHIPMENT_DELAYED": Scenario(
        [order(), b.paid("SO-1", 1000, event_id="p1", at=t(minutes=5))],
        t(hours=48, minutes=5),
        ["s1"],
        [b.dispatched("SO-1", event_id="d1", at=t(hours=50))],
        t(hours=50),
        "d1",
        tick_to=t(hours=48, minutes=5),
    ),
    "DELIVERY_OVERDUE": Scenario(
        [
            order(),
            b.paid("SO-1", 1000, event_id="p1", at=t(minutes=5)),
            b.dispatched("SO-1", event_id="d1", at=t(hours=1)),
        ],
        t(days=7, hours=1),
        ["d1"],
        [b.delivered("SO-1", event_id="v1", at=t(days=8))],
        t(days=8),
        "v1",
        tick_to=t(days=7, hours=1),
        exception_id="{code}:SO-1:SH-1",
    ),
    "DELIVERY_FAILED": Scenario(
        [
            order(),
            b.paid("SO-1", 1000, event_id="p1", at=t(minutes=5)),
            b.dispatched("SO-1", event_id="d1", at=t(hours=1)),
            b.delivery_failed("SO-1", event_id="x1", at=t(hours=20)),
        ],
        t(hours=20),
        ["x1"],
        [b.delivered("SO-1", event_id="v1", at=t(hours=30))],
        t(hours=30),
        "v1",
        exception_id="{code}:SO-1:x1",
    ),
    "SHIPPED_AFTER_CANCEL": Scenario(
        [
            order(),
            b.cancelled("SO-1", event_id="c1", at=t(minutes=10)),
            b.dispatched("SO-1", event_id="d1", at=t(hours=1)),
        ],
        t(hours=1),
        ["c1", "d1"],
        [b.delivered("SO-1", event_id="v1", at=t(hours=2))],
    ),
    "ADDRESS_INVALID": Scenario(
        [order(address={**b.ADDRESS, "phone": "call me"})],
        t(),
        ["s1"],
        [b.address_corrected("SO-1", event_id="a1", at=t(minutes=10))],
        t(minutes=10),
        "a1",
    ),
    "TOTAL_MISMATCH": Scenario(
        [order(total=900)],
        t(),
        ["s1"],
        [b.paid("SO-1", 900, event_id="p1", at=t(minutes=5))],
    ),
    "BELOW_PRICE_FLOOR": Scenario(
        [order(discount=600)],
        t(),
        ["s1"],
        [b.paid("SO-1", 400, event_id="p1", at=t(minutes=5))],
    ),
    "SHIPPED_BEFORE_PAID": Scenario(
        [
            order(),
            b.paid("SO-1", 400, event_id="p1", at=t(minutes=5)),
            b.dispatched("SO-1", event_id="d1", at=t(hours=1)),
        ],
        t(hours=1),
        ["d1"],
        [b.paid("SO-1", 600, "P-2", event_id="p2", at=t(hours=2))],
        t(hours=2),
        "p2",
    ),
    "REQUEST_REFUSED": Scenario(
        [order(), b.confirmed("SO-1", event_id="k1", at=t(minutes=5))],  # it does not need confirming
        t(minutes=5),
        ["k1"],
        [b.paid("SO-1", 1000, event_id="p1", at=t(minutes=10))],
        exception_id="{code}:SO-1:k1",
    ),
    "DATA_CONFLICT": Scenario(
        [
            order(),
            b.paid("SO-1", 1000, "P-1", event_id="p1", at=t(minutes=5)),
            b.paid("SO-1", 900, "P-1", event_id="p1b", at=t(minutes=6)),
        ],
        t(minutes=6),
        ["p1b"],
        [b.refunded("SO-1", 100, event_id="r1", at=t(minutes=30))],
        exception_id="{code}:SO-1:p1b",
    ),
}
"""Per order code: what opens it, when, caused by what; what comes later."""
CLEARING = sorted(code for code, scenario in SCENARIOS.items() if scenario.cleared_at is not None)
NEVER = sorted(code for code, scenario in SCENARIOS.items() if scenario.cleared_at is None)


def open_scenario(scene: Scene, code: str) -> dict[str, Any]:
    scenario = SCENARIOS[code]
    scene.publish(*scenario.opening, accepted=False)
    run(scene)
    exception_id = scenario.exception_id.format(code=code)
    if scenario.tick_to is not None:
        assert exception_id not in items(scene), "opened before its deadline"
        tick(scene.app, format_instant(parse_instant(scenario.tick_to) - timedelta(milliseconds=1)), "test")
        run(scene)
        assert exception_id not in items(scene), "opened a millisecond before its deadline"
        tick(scene.app, scenario.tick_to, "test")
        run(scene)
    found = items(scene)
    assert exception_id in found, sorted(found)
    return found[exception_id]


def test_the_scenarios_cover_every_code() -> None:
    assert set(SCENARIOS) | {"OVERSOLD", "ORDER_VELOCITY"} == set(CODES)
    assert set(CLEARING) == {code for code, c in CODES.items() if c.clears_when} - {"OVERSOLD"}


@pytest.mark.parametrize("code", sorted(SCENARIOS))
def test_each_code_opens_with_its_owner_severity_and_due_time(scene: Scene, code: str) -> None:
    scenario = SCENARIOS[code]
    item = open_scenario(scene, code)
    due = format_instant(parse_instant(scenario.detected_at) + timedelta(hours=CODES[code].sla_hours))
    assert {name: item[name] for name in ("order_id", "code", "type", "department", "severity", "subject")} == {
        "order_id": "SO-1",
        "code": code,
        "type": CODES[code].type,
        "department": str(CODES[code].department),
        "severity": CODES[code].severity,
        "subject": "order SO-1",
    }
    assert (item["detected_at"], item["due_at"], item["caused_by"]) == (scenario.detected_at, due, scenario.caused_by)
    assert (item["status"], item["resolution"], item["resolved_at"], item["cleared_by"]) == ("open", None, None, None)
    assert [item["exception_id"] for item in queue_view.queue(scene.views, code=code)] == [item["exception_id"]]


@pytest.mark.parametrize("code", CLEARING)
def test_each_code_that_clears_by_itself_is_resolved_automatically(scene: Scene, code: str) -> None:
    scenario = SCENARIOS[code]
    exception_id = open_scenario(scene, code)["exception_id"]
    scene.publish(*scenario.later)
    run(scene)

    item = items(scene)[exception_id]
    assert (item["status"], item["resolution"], item["resolved_at"], item["cleared_by"], item["resolved_by"]) == (
        "resolved",
        "automatic",
        scenario.cleared_at,
        scenario.cleared_by,
        None,
    )
    assert exception_id not in {item["exception_id"] for item in queue_view.queue(scene.views)}  # not active
    assert exception_id in {item["exception_id"] for item in queue_view.queue(scene.views, status="resolved")}


@pytest.mark.parametrize("code", NEVER)
def test_each_code_that_never_clears_stays_open_until_a_person_resolves_it(scene: Scene, code: str) -> None:
    exception_id = open_scenario(scene, code)["exception_id"]
    scene.publish(*SCENARIOS[code].later)
    run(scene)
    item = items(scene)[exception_id]
    assert (item["status"], item["cleared_by"]) == ("open", None)

    act_on_exception(scene.app, "ExceptionResolved", item, "li.na", "reversed with the bank")
    run(scene)
    item = items(scene)[exception_id]
    assert (item["status"], item["resolution"], item["resolved_by"], item["note"]) == (
        "resolved",
        "person",
        "li.na",
        "reversed with the bank",
    )


# ------------------------------------------------------------ OVERSOLD (the holds view's) and ORDER_VELOCITY


def test_oversold_opens_when_an_skus_available_goes_below_zero_and_clears_when_counted_again(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    scene.publish(
        b.stock_counted("SKU-B", 1, at=t()),
        b.submitted("SO-1", lines=[("SKU-B", 3, 500)], event_id="s1", at=t(hours=1)),
        b.paid("SO-1", 1500, at=t(hours=1, minutes=5)),
    )
    run(scene)
    item = items(scene)["OVERSOLD:SKU-B"]
    assert {name: item[name] for name in ("order_id", "code", "type", "department", "severity", "subject")} == {
        "order_id": None,
        "code": "OVERSOLD",
        "type": "inventory",
        "department": "warehouse",
        "severity": "high",
        "subject": "sku SKU-B (available -2)",
    }
    assert (item["detected_at"], item["due_at"], item["caused_by"], item["status"]) == (
        t(hours=1),
        t(hours=3),
        ["s1"],
        "open",
    )
    monkeypatch.setenv("ORDERLOG_SLA", "OVERSOLD=30m")
    assert items(scene)["OVERSOLD:SKU-B"]["due_at"] == t(hours=1, minutes=30)

    scene.publish(b.stock_counted("SKU-B", 5, at=t(hours=2)))
    run(scene)
    assert "OVERSOLD:SKU-B" not in items(scene)


def test_oversold_clears_when_a_cancellation_releases_the_holds(scene: Scene) -> None:
    scene.publish(
        b.stock_counted("SKU-B", 1, at=t()),
        b.submitted("SO-1", lines=[("SKU-B", 3, 500)], at=t(hours=1)),
    )
    run(scene)
    assert "OVERSOLD:SKU-B" in items(scene)
    scene.publish(b.cancelled("SO-1", at=t(hours=1, minutes=10)))
    run(scene)
    assert "OVERSOLD:SKU-B" not in items(scene)


def test_more_orders_than_the_velocity_limit_within_24_hours_flags_the_customer(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERLOG_VELOCITY_LIMIT", "2")
    scene.publish(
        *(b.submitted(f"SO-{n}", customer_id="C-1", event_id=f"s{n}", at=t(hours=n)) for n in (1, 2, 3)),
        b.submitted("SO-9", customer_id="C-2", at=t(hours=3)),  # another customer's: not counted
        b.submitted("SO-4", customer_id="C-1", event_id="s4", at=t(hours=26)),  # SO-1 and SO-2 are 24 h past
    )
    for n in (1, 2, 3, 4, 9):
        scene.publish(b.paid(f"SO-{n}", 1000, f"P-{n}", at=t(hours=26)))
    run(scene)
    flagged = items(scene, code="ORDER_VELOCITY")
    assert list(flagged) == ["ORDER_VELOCITY:SO-3"]
    item = flagged["ORDER_VELOCITY:SO-3"]
    assert (item["subject"], item["department"], item["type"], item["detected_at"], item["due_at"]) == (
        "customer C-1",
        "risk",
        "risk",
        t(hours=3),
        t(hours=7),
    )
    assert item["caused_by"] == ["s3"]

    scene.publish(b.submitted("SO-0", customer_id="C-1", event_id="s0", at=t(minutes=30)))  # arrives late
    run(scene)
    assert sorted(items(scene, code="ORDER_VELOCITY")) == ["ORDER_VELOCITY:SO-2", "ORDER_VELOCITY:SO-3"]


def test_the_default_velocity_limit_is_20_orders_in_24_hours(scene: Scene) -> None:
    scene.publish(
        *(b.submitted(f"SO-{n:02d}", customer_id="C-1", at=t(minutes=n)) for n in range(1, 22)),
    )
    run(scene)
    assert list(items(scene, code="ORDER_VELOCITY")) == ["ORDER_VELOCITY:SO-21"]


def test_a_code_that_never_clears_stays_open_when_later_records_would_clear_another(scene: Scene) -> None:
    """ORDER_VELOCITY is decided at submission: paying, shipping, delivering changes nothing."""
    scene.publish(*(b.submitted(f"SO-{n:02d}", customer_id="C-1", at=t(minutes=n)) for n in range(1, 22)))
    scene.publish(
        b.paid("SO-21", 1000, at=t(minutes=25)),
        b.dispatched("SO-21", at=t(hours=2)),
        b.delivered("SO-21", at=t(hours=20)),
    )
    run(scene)
    item = items(scene)["ORDER_VELOCITY:SO-21"]
    assert item["status"] == "open"
    act_on_exception(scene.app, "ExceptionResolved", item, "risk-desk", "a reseller, vetted")
    run(scene)
    assert items(scene)["ORDER_VELOCITY:SO-21"]["resolution"] == "person"


# ------------------------------------------------------------ SLAs and deadlines, on the queue's clock


def test_a_configured_sla_sets_the_due_time(scene: Scene, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERLOG_SLA", "PAYMENT_DUPLICATE=30m,REQUEST_REFUSED=2d")
    scene.publish(
        *SCENARIOS["PAYMENT_DUPLICATE"].opening, b.confirmed("SO-1", event_id="k1", at=t(minutes=7)), accepted=False
    )
    run(scene)
    found = items(scene)
    assert found["PAYMENT_DUPLICATE:SO-1"]["due_at"] == t(minutes=36)
    assert found["REQUEST_REFUSED:SO-1:k1"]["due_at"] == t(days=2, minutes=7)


def test_deadlines_pass_by_upstream_event_time_not_by_arrival_or_the_wall_clock(scene: Scene) -> None:
    scene.publish(
        b.submitted("SO-1", at=t()),
        b.paid("SO-1", 1000, at=t(minutes=5)),
        b.cancelled("SO-1", event_id="c1", at=t(hours=1)),
    )
    run(scene)
    clock_to(scene, t(hours=25, ms=-1))
    run(scene)
    assert "REFUND_OVERDUE:SO-1" not in items(scene)
    clock_to(scene, t(hours=25))
    run(scene)
    assert items(scene)["REFUND_OVERDUE:SO-1"]["detected_at"] == t(hours=25)


def test_the_overdue_flag_follows_the_queues_clock(scene: Scene) -> None:
    scene.publish(*SCENARIOS["REFUND_OVERDUE"].opening)
    tick(scene.app, t(hours=25), "cron")
    run(scene)
    item = items(scene)["REFUND_OVERDUE:SO-1"]
    assert (item["due_at"], item["overdue"], queue_view.clock(scene.views)) == (t(hours=29), False, t(hours=25))
    tick(scene.app, t(hours=29), "cron")
    run(scene)
    assert not items(scene)["REFUND_OVERDUE:SO-1"]["overdue"]  # due at 29 h: not past it yet
    assert queue_view.queue(scene.views, overdue=True) == []
    tick(scene.app, t(hours=29, ms=1), "cron")
    run(scene)
    assert [item["exception_id"] for item in queue_view.queue(scene.views, overdue=True)] == ["REFUND_OVERDUE:SO-1"]
    assert queue_view.by_department(scene.views) == [{"department": "finance", "active": 1, "overdue": 1}]
    assert queue_view.headline(scene.views) == "open by department: finance 1 (1 overdue)"

    scene.publish(b.refunded("SO-1", 1000, at=t(hours=30)))
    run(scene)
    assert not items(scene)["REFUND_OVERDUE:SO-1"]["overdue"]  # resolved: never overdue
    assert queue_view.headline(scene.views) == "no open exceptions"


def test_ticks_only_go_forward_and_a_replay_sees_them_where_they_were(scene: Scene) -> None:
    scene.publish(*SCENARIOS["SHIPMENT_DELAYED"].opening)
    tick(scene.app, t(days=3), "cron")
    with pytest.raises(QueueActionError, match="a tick must go forward"):
        tick(scene.app, t(days=2), "cron")
    with pytest.raises(QueueActionError):
        tick(scene.app, t(days=3), "cron")
    run(scene)
    assert items(scene)["SHIPMENT_DELAYED:SO-1"]["detected_at"] == t(hours=48, minutes=5)
    ticks = [record for _position, record in scene.records() if record.type == "ClockTicked"]
    assert [(record.occurred_at, record.actor, record.stream) for record in ticks] == [(t(days=3), "cron", "clock")]

    rebuilt = scene.open_views("rebuilt.views.db")
    replay(rebuilt, [Exceptions], LogSource(scene.app.log_reader))
    assert rows(rebuilt) == rows(scene.views)
    assert queue_view.clock(rebuilt) == t(days=3)
    rebuilt.close()


# ------------------------------------------------------------ the payment timeout


def test_an_unpaid_order_is_cancelled_by_the_engine_30_minutes_after_submission(scene: Scene) -> None:
    scene.publish(b.submitted("SO-1", at=t()))
    clock_to(scene, t(minutes=30, ms=-1))
    run(scene)
    assert timeout_records(scene) == []
    clock_to(scene, t(minutes=30))
    run(scene)

    (cancellation,) = timeout_records(scene)
    assert (
        cancellation.type,
        cancellation.key,
        cancellation.event_id,
        cancellation.occurred_at,
        cancellation.source,
        cancellation.actor,
        cancellation.data,
    ) == (
        "OrderCancelled",
        "SO-1",
        "orderlog/payment-timeout/SO-1",
        t(minutes=30),
        "orderlog",
        None,
        {"reason_code": "PAYMENT_TIMEOUT", "initiated_by": "system", "note": ""},
    )
    assert [record.type for record in scene.app.order_history("SO-1")] == ["OrderSubmitted", "OrderCancelled"]
    cancelled = scene.app.stream(Order, "SO-1")
    assert cancelled is not None and cancelled.status is Status.CANCELLED


def test_an_order_needing_confirmation_times_out_72_hours_after_confirmation_never_before(scene: Scene) -> None:
    scene.publish(
        b.submitted("SO-1", requires_confirmation=True, at=t()),
        b.submitted("SO-2", requires_confirmation=True, customer_id="C-2", at=t()),
        b.confirmed("SO-1", at=t(hours=5)),
    )
    clock_to(scene, t(hours=77, ms=-1))  # days after submission, 30 min after confirmation long past
    run(scene)
    assert timeout_records(scene) == []
    clock_to(scene, t(days=30))
    run(scene)
    assert [(record.key, record.occurred_at) for record in timeout_records(scene)] == [("SO-1", t(hours=77))]


@pytest.mark.parametrize(
    "settled",
    [
        [b.paid("SO-1", 1000, at=t(minutes=29))],
        [b.paid("SO-1", 300, at=t(minutes=29))],  # a deposit is a payment
        [b.paid("SO-1", 1000, at=t(minutes=45))],  # late, but recorded before the queue caught up
        [b.cancelled("SO-1", "CHANGED_MIND", "customer", at=t(minutes=10))],
    ],
    ids=["paid", "deposit", "paid-late-before-the-queue-ran", "cancelled-before"],
)
def test_a_paid_or_cancelled_order_is_not_timed_out(scene: Scene, settled: list[dict[str, Any]]) -> None:
    scene.publish(b.submitted("SO-1", at=t()), *settled)
    clock_to(scene, t(hours=2))
    run(scene)
    assert timeout_records(scene) == []
    assert not [record for _p, record in scene.records() if record.type == "RequestRefused"]


def test_the_timeout_is_recorded_once_however_often_the_queue_runs_or_is_rebuilt(scene: Scene) -> None:
    scene.publish(b.submitted("SO-1", at=t()), b.submitted("SO-2", customer_id="C-2", at=t(hours=1)))
    run(scene)
    run(scene)
    replay(scene.views, [Exceptions], LogSource(scene.app.log_reader))  # in place, blue/green
    rebuilt = scene.open_views("rebuilt.views.db")
    replay(rebuilt, [Holds, Exceptions], LogSource(scene.app.log_reader, batch=1))
    run(scene, views=rebuilt)
    run(scene)
    rebuilt.close()
    assert [(record.key, record.event_id) for record in timeout_records(scene)] == [
        ("SO-1", "orderlog/payment-timeout/SO-1")
    ]


def test_a_second_queue_deciding_the_same_timeout_is_refused_by_the_event_id(scene: Scene) -> None:
    """Two queues (another views database, e.g. a second replica) that both saw SO-1 unpaid
    past its deadline: the store takes the second cancellation as the duplicate it is."""
    scene.publish(b.submitted("SO-1", at=t()), b.submitted("SO-2", customer_id="C-2", at=t(hours=1)))
    before = scene.records()
    run(scene)
    second = scene.open_views("second.views.db")
    run(scene, views=second, source=ListSource(before))  # still behind: it decides SO-1 again
    second.close()
    assert len(timeout_records(scene)) == 1
    assert [record.type for record in scene.app.order_history("SO-1")] == ["OrderSubmitted", "OrderCancelled"]


def test_no_timeout_is_decided_half_way_through_history(scene: Scene) -> None:
    """The clock passes SO-1's deadline in the first batch, but the payment that settles it is
    further on: the queue waits until it has caught up with its source."""
    scene.publish(
        b.submitted("SO-1", at=t()),
        b.submitted("SO-2", customer_id="C-2", at=t(hours=1)),
        b.paid("SO-1", 1000, at=t(minutes=20)),  # arrives late
        b.paid("SO-2", 1000, at=t(hours=1, minutes=5)),
        b.stock_counted("SKU-CLOCK", 1, at=t(hours=1, minutes=6)),
    )
    run(scene, batch=2)
    assert timeout_records(scene) == []


def test_a_timeout_is_recorded_when_the_log_ends_on_a_full_batch(scene: Scene) -> None:
    scene.publish(b.submitted("SO-1", at=t()), b.submitted("SO-2", customer_id="C-2", at=t(hours=1)))
    run(scene, batch=2)
    run(scene, batch=2)
    scene.publish(b.submitted("SO-3", customer_id="C-3", at=t(hours=1, minutes=10)))
    run(scene, batch=2)
    assert [record.key for record in timeout_records(scene)] == ["SO-1"]


def test_a_timeout_decided_by_a_process_that_stopped_before_handing_it_over_is_asked_for_again(
    scene: Scene,
) -> None:
    """Half-way through history a decision waits for the queue to catch up: a process killed
    in between has committed the queue's rows but not asked the engine. The next one asks."""
    scene.publish(b.submitted("SO-1", at=t()), b.submitted("SO-2", customer_id="C-2", at=t(hours=1)))
    asked: list[Any] = []
    stopped = Runner(scene.views, [Holds, Exceptions], commands=asked.extend)
    stopped.apply(dataclasses.replace(batch_of(scene.records()), caught_up=False))
    assert asked == [] and timeout_records(scene) == []

    run(scene)  # a new process, with nothing new to fold
    assert [record.key for record in timeout_records(scene)] == ["SO-1"]
    run(scene)
    assert len(timeout_records(scene)) == 1


@pytest.mark.parametrize(
    "meanwhile",
    [b.paid("SO-1", 1000, at=t(hours=1, minutes=1)), b.cancelled("SO-1", "CHANGED_MIND", "customer", at=t(hours=1))],
    ids=["paid", "cancelled"],
)
def test_a_timeout_decided_before_the_queue_read_what_settled_the_order_is_not_recorded(
    scene: Scene, meanwhile: dict[str, Any]
) -> None:
    """The queue decides from its view, which can lag behind the store (Kafka's relay, another
    writer): the order as recorded decides, and the run goes on."""
    scene.publish(b.submitted("SO-1", at=t()), b.submitted("SO-2", customer_id="C-2", at=t(hours=1)))
    read = scene.records()
    scene.publish(meanwhile)
    run(scene, source=ListSource(read))

    assert timeout_records(scene) == []
    assert [record.type for record in scene.app.order_history("SO-1")] == ["OrderSubmitted", meanwhile["type"]]
    run(scene)
    assert timeout_records(scene) == []


def test_two_queues_recording_the_same_timeout_at_once_both_succeed(scene: Scene) -> None:
    scene.publish(b.submitted("SO-1", at=t()))
    engines = [open_orderlog(scene.config, writing=True) for _ in range(2)]
    both_loaded = threading.Barrier(2, timeout=10)
    failures: list[BaseException] = []

    def loads_together(engine: Any) -> None:
        stream = engine.stream
        waited: list[bool] = []

        def wrapped(*args: Any) -> Any:
            found = stream(*args)
            if not waited:
                waited.append(True)
                both_loaded.wait()  # the other process has read the same version
            return found

        engine.stream = wrapped

    def record(engine: Any) -> None:
        try:
            record_decisions(engine, [payment_timeout_cancellation("SO-1", t(minutes=30))])
        except BaseException as error:
            failures.append(error)

    for engine in engines:
        loads_together(engine)
    workers = [threading.Thread(target=record, args=(engine,)) for engine in engines]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    for engine in engines:
        engine.close()
    assert len(timeout_records(scene)) == 1
    assert failures == []


def test_a_deadline_is_seen_by_a_new_process_whatever_it_loaded(scene: Scene) -> None:
    scene.publish(b.submitted("SO-X", customer_id="C-1", at=t()), b.paid("SO-X", 1000, at=t(minutes=5)))
    run(scene)  # SO-X's SHIPMENT_DELAYED is due at 48 h 5 min
    scene.publish(
        b.submitted("SO-Y", customer_id="C-1", at=t(hours=-1)),  # the same customer's, arriving late
        b.paid("SO-Y", 1000, at=t(hours=-1)),
        b.dispatched("SO-Y", at=t(hours=2)),
    )
    clock_to(scene, t(days=3))
    run(scene)  # a new process, as every `orderlog project --once` is
    rebuilt = scene.open_views("rebuilt.views.db")
    replay(rebuilt, [Exceptions], LogSource(scene.app.log_reader))
    assert "SHIPMENT_DELAYED:SO-X" in items(scene, rebuilt)
    assert "SHIPMENT_DELAYED:SO-X" in items(scene)
    rebuilt.close()


def test_a_deadline_is_seen_by_a_new_process(scene: Scene) -> None:
    """The same as above without the customer's late order: the stored deadline is found."""
    scene.publish(b.submitted("SO-X", customer_id="C-1", at=t()), b.paid("SO-X", 1000, at=t(minutes=5)))
    run(scene)
    scene.publish(b.submitted("SO-Y", customer_id="C-2", at=t(hours=-1)), b.paid("SO-Y", 1000, at=t(hours=-1)))
    scene.publish(b.dispatched("SO-Y", at=t(hours=2)))
    clock_to(scene, t(days=3))
    run(scene)
    assert items(scene)["SHIPMENT_DELAYED:SO-X"]["detected_at"] == t(hours=48, minutes=5)


def test_a_deadline_passed_later_in_the_same_run_is_seen(scene: Scene) -> None:
    """One run, a record per batch: SO-1's deadline passes three batches after it was folded."""
    scene.publish(
        b.submitted("SO-1", at=t()),
        b.paid("SO-1", 1000, at=t(minutes=5)),
        b.stock_counted("SKU-CLOCK", 1, at=t(hours=1)),
        b.stock_counted("SKU-CLOCK", 2, at=t(days=3)),
    )
    run(scene, batch=1)
    assert items(scene)["SHIPMENT_DELAYED:SO-1"]["detected_at"] == t(hours=48, minutes=5)


# ------------------------------------------------------------ people's actions


def test_acknowledging_and_resolving_are_recorded_in_the_orders_history(scene: Scene) -> None:
    scene.publish(*SCENARIOS["REFUND_EXCEEDS_PAID"].opening)
    run(scene)
    item = items(scene)["REFUND_EXCEEDS_PAID:SO-1"]
    act_on_exception(scene.app, "ExceptionAcknowledged", item, "  wang.fang ", "calling the bank")
    run(scene)
    acked = items(scene)["REFUND_EXCEEDS_PAID:SO-1"]
    ack_record = scene.app.order_history("SO-1")[-1]
    assert (ack_record.type, ack_record.actor, ack_record.source, ack_record.data) == (
        "ExceptionAcknowledged",
        "wang.fang",
        "orderlog",
        {"exception_id": "REFUND_EXCEEDS_PAID:SO-1", "code": "REFUND_EXCEEDS_PAID", "note": "calling the bank"},
    )
    assert (acked["status"], acked["acknowledged_by"], acked["acknowledged_at"], acked["note"]) == (
        "acknowledged",
        "wang.fang",
        ack_record.occurred_at,
        "calling the bank",
    )
    assert acked["exception_id"] in {item["exception_id"] for item in queue_view.queue(scene.views)}  # still active

    act_on_exception(scene.app, "ExceptionResolved", acked, "li.na", "bank reversed 5.00")
    run(scene)
    resolved = items(scene)["REFUND_EXCEEDS_PAID:SO-1"]
    resolve_record = scene.app.order_history("SO-1")[-1]
    assert (resolve_record.type, resolve_record.actor, resolve_record.data["note"]) == (
        "ExceptionResolved",
        "li.na",
        "bank reversed 5.00",
    )
    assert {
        name: resolved[name]
        for name in ("status", "resolution", "resolved_by", "resolved_at", "note", "acknowledged_by")
    } == {
        "status": "resolved",
        "resolution": "person",
        "resolved_by": "li.na",
        "resolved_at": resolve_record.occurred_at,
        "note": "bank reversed 5.00",
        "acknowledged_by": "wang.fang",
    }
    rebuilt = scene.open_views("rebuilt.views.db")
    replay(rebuilt, [Exceptions], LogSource(scene.app.log_reader))
    assert rows(rebuilt) == rows(scene.views)  # people's actions are facts: a replay shows them
    rebuilt.close()


def test_an_acknowledged_exception_still_clears_by_itself(scene: Scene) -> None:
    scene.publish(*SCENARIOS["ADDRESS_INVALID"].opening)
    run(scene)
    act_on_exception(scene.app, "ExceptionAcknowledged", items(scene)["ADDRESS_INVALID:SO-1"], "cs-team", "")
    scene.publish(b.address_corrected("SO-1", event_id="a1", at=t(minutes=10)))
    run(scene)
    item = items(scene)["ADDRESS_INVALID:SO-1"]
    assert (item["status"], item["resolution"], item["cleared_by"], item["acknowledged_by"]) == (
        "resolved",
        "automatic",
        "a1",
        "cs-team",
    )


@pytest.mark.parametrize("by", ["", "   "])
def test_an_action_names_who_acts(scene: Scene, by: str) -> None:
    scene.publish(*SCENARIOS["TOTAL_MISMATCH"].opening)
    run(scene)
    before = len(scene.records())
    with pytest.raises(QueueActionError, match="--by must name who acts"):
        act_on_exception(scene.app, "ExceptionResolved", items(scene)["TOTAL_MISMATCH:SO-1"], by, "fixed")
    assert len(scene.records()) == before


def test_a_resolution_says_how(scene: Scene) -> None:
    scene.publish(*SCENARIOS["TOTAL_MISMATCH"].opening)
    run(scene)
    with pytest.raises(QueueActionError, match="note"):
        act_on_exception(scene.app, "ExceptionResolved", items(scene)["TOTAL_MISMATCH:SO-1"], "li.na", "x" * 5000)


def test_acting_on_an_exception_does_not_move_the_queues_clock(scene: Scene) -> None:
    scene.publish(*SCENARIOS["TOTAL_MISMATCH"].opening, b.submitted("SO-2", customer_id="C-2", at=t(minutes=5)))
    run(scene)
    act_on_exception(scene.app, "ExceptionAcknowledged", items(scene)["TOTAL_MISMATCH:SO-1"], "li.na", "")
    run(scene)
    assert queue_view.clock(scene.views) == t(minutes=5)
    assert timeout_records(scene) == []


# ------------------------------------------------------------ one queue, however it is built

EXAMPLES = settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def timeout_cancellations(scene: Scene) -> list[Record]:
    return [
        record
        for _position, record in scene.records()
        if record.type == "OrderCancelled" and record.data["reason_code"] == "PAYMENT_TIMEOUT"
    ]


@EXAMPLES
@given(
    seed=st.integers(0, 10**6),
    orders=st.integers(30, 80),
    cuts=st.lists(st.floats(0, 1), max_size=3),
    batch=st.sampled_from([3, 29, 5_000]),
)
def test_the_queue_built_incrementally_equals_a_full_replay_and_timeouts_are_never_duplicated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, orders: int, cuts: list[float], batch: int
) -> None:
    monkeypatch.setenv("ORDERLOG_VELOCITY_LIMIT", "1")  # the simulator's customers order a few times a day
    lines = list(simulate(orders, seed))
    scene = Scene(tmp_path / uuid.uuid4().hex[:12])
    try:
        done = 0
        for cut in [*sorted(int(cut * len(lines)) for cut in cuts), len(lines)]:
            scene.publish(*lines[done:cut], accepted=False)
            done = cut
            run(scene, batch=batch)
        run(scene, batch=batch)  # the cancellations the last run recorded, folded
        incremental = rows(scene.views)
        assume(incremental)  # a few small seeds open nothing: nothing to compare (most examples do)

        rebuilt = scene.open_views("rebuilt.views.db")
        replay(rebuilt, [Exceptions], LogSource(scene.app.log_reader))
        assert rows(rebuilt) == incremental
        assert queue_view.clock(rebuilt) == queue_view.clock(scene.views)
        rebuilt.close()

        cancelled = timeout_cancellations(scene)
        replay(scene.views, [Holds, Exceptions], LogSource(scene.app.log_reader, batch=batch))
        run(scene)
        another = scene.open_views("another.views.db")
        run(scene, views=another)  # a second queue, from nothing
        run(scene, views=another)
        run(scene)
        after = timeout_cancellations(scene)
        assert after[: len(cancelled)] == cancelled
        keys = [record.key for record in timeout_records(scene)]
        assert len(keys) == len(set(keys)), "an order was timed out twice"
        assert all(record.event_id == f"{PAYMENT_TIMEOUT_PREFIX}{record.key}" for record in after)
    finally:
        scene.close()


@pytest.mark.kafka
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(1, 10_000), orders=st.integers(40, 100))
def test_the_queue_from_kafka_equals_the_queue_from_the_log(
    kafka_broker: str, tmp_path: Path, seed: int, orders: int
) -> None:
    """Records of different orders arrive interleaved differently from three partitions; event
    time decides, so the queue is the same (OVERSOLD, the holds view's, depends on arrival
    order: README, Views)."""
    config = kafka_config(kafka_broker, f"sqlite:///{tmp_path}/store-{uuid.uuid4().hex[:8]}.db", tmp_path)
    publish(config, list(simulate(orders, seed)))
    live, from_kafka, from_log = (fresh_views(tmp_path, name) for name in ("live", "kafka", "log"))
    engine = open_orderlog(config, writing=True)
    try:
        project(live, [Exceptions], LogSource(engine.log_reader), follow=False, engine=engine)  # the timeouts
        relay(config)
        fold_from_kafka(config, from_kafka, f"queue-{uuid.uuid4().hex[:6]}", [Exceptions])
        replay(from_log, [Exceptions], LogSource(engine.log_reader, batch=97))
        expected = rows(from_log)
        assume(expected)  # a few small seeds open nothing: nothing to compare
        assert rows(from_kafka) == expected
    finally:
        engine.close()
        for views in (live, from_kafka, from_log):
            views.close()


def test_a_late_submission_is_counted_with_the_customers_earlier_orders(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERLOG_VELOCITY_LIMIT", "1")
    scene.publish(b.submitted("SO-1", customer_id="C-1", at=t()), b.paid("SO-1", 1000, at=t(minutes=5)))
    clock_to(scene, t(days=3))
    scene.publish(b.submitted("SO-2", customer_id="C-1", at=t(hours=1)))  # from a channel three days behind
    run(scene)
    assert list(items(scene, code="ORDER_VELOCITY")) == ["ORDER_VELOCITY:SO-2"]


def test_pages_of_the_queue_are_the_whole_queue_in_order_overdue_first_for_every_status_and_filter(
    scene: Scene,
) -> None:
    """The queue reads each status's first rows by due time and merges them: its pages must be
    the slices of the whole queue, sorted overdue first, then by due time, then by id."""
    scene.publish(*simulate(400, 31), accepted=False)
    run(scene)
    acted = [item for item in queue_view.queue(scene.views) if item["order_id"] is not None][:12]
    for number, item in enumerate(acted):
        action = "ExceptionResolved" if number % 2 else "ExceptionAcknowledged"
        act_on_exception(scene.app, action, item, "ops", "by hand")
    run(scene)
    rows = scene.views.rows(f"SELECT exception_id, status, due_at, department FROM {EXCEPTIONS.name}")
    assert {row["status"] for row in rows} == {"open", "acknowledged", "resolved"}
    now = queue_view.clock(scene.views)
    for status in queue_view.STATUSES:
        for department in (None, "finance", "logistics"):
            whole = queue_view.queue(scene.views, status=status, department=department)
            key = [(not item["overdue"], item["due_at"], item["exception_id"]) for item in whole]
            assert key == sorted(key), (status, department)
            expected = {
                row["exception_id"]
                for row in rows
                if row["status"] in queue_view.STATUSES[status] and department in (None, row["department"])
            }
            assert {item["exception_id"] for item in whole if item["order_id"]} == expected
            assert any(item["overdue"] for item in whole) or status == "resolved" or department
            pages = [
                queue_view.queue(scene.views, status=status, department=department, limit=7, offset=offset)
                for offset in range(0, len(whole) + 7, 7)
            ]
            assert [item for page in pages for item in page] == whole, (status, department)
    assert now


def test_a_person_acts_on_an_exception_once_even_when_the_queue_view_lags_behind(scene: Scene) -> None:
    """The view still shows the exception open (it has not folded the first action): the order
    itself refuses a second resolution, or an acknowledgement after one, and records nothing."""
    scene.publish(*SCENARIOS["REFUND_EXCEEDS_PAID"].opening)
    run(scene)
    stale = items(scene)["REFUND_EXCEEDS_PAID:SO-1"]
    act_on_exception(scene.app, "ExceptionAcknowledged", stale, "wang.fang", "calling the bank")
    with pytest.raises(QueueActionError, match=r"REFUND_EXCEEDS_PAID:SO-1 was already acknowledged by wang\.fang at"):
        act_on_exception(scene.app, "ExceptionAcknowledged", stale, "li.na", "me too")
    act_on_exception(scene.app, "ExceptionResolved", stale, "li.na", "bank reversed 5.00")
    before = len(scene.app.order_history("SO-1"))
    for action in ("ExceptionResolved", "ExceptionAcknowledged"):
        with pytest.raises(QueueActionError, match=r"REFUND_EXCEEDS_PAID:SO-1 was already resolved by li\.na at"):
            act_on_exception(scene.app, action, stale, "zhao.lei", "again")
    assert len(scene.app.order_history("SO-1")) == before


def test_an_action_taken_while_another_writer_appends_to_the_order_is_decided_again(scene: Scene) -> None:
    """The console reads the order, the CLI (or an upstream event) appends to it, then the
    console saves: it reads the order again and decides again, instead of failing."""
    scene.publish(*SCENARIOS["REFUND_EXCEEDS_PAID"].opening)
    run(scene)
    item = items(scene)["REFUND_EXCEEDS_PAID:SO-1"]
    stale = scene.app.stream(Order, "SO-1")
    act_on_exception(scene.app, "ExceptionAcknowledged", item, "li.na", "first")  # the other writer
    reads = iter([stale])
    fresh = scene.app.stream
    scene.app.stream = lambda cls, key: next(reads, None) or fresh(cls, key)  # type: ignore[method-assign]
    try:
        act_on_exception(scene.app, "ExceptionResolved", item, "wang.fang", "bank reversed it")
    finally:
        del scene.app.stream
    history = [(record.type, record.actor) for record in scene.app.order_history("SO-1")[-2:]]
    assert history == [("ExceptionAcknowledged", "li.na"), ("ExceptionResolved", "wang.fang")]
