"""The order status view, for customer service: status and financial status by the domain's
rules, a timeline row for every change of either (and none when nothing changed), the
units ordered, shipped and delivered per line, and the order's holds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from projections import status
from projections.status import OrderStatus
from tests import builders as b
from tests.read_models import Scene, instant


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    scene = Scene(tmp_path)
    yield scene
    scene.close()


def timeline(found: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (row["seq"], row["at"], row["status"], row["financial_status"], row["event_type"]) for row in found["timeline"]
    ]


def test_a_confirmed_paid_shipped_delivered_order_and_its_timeline(scene: Scene) -> None:
    scene.publish(
        b.submitted(
            "SO-1",
            lines=[("SKU-A", 2, 500), ("SKU-B", 1, 1000)],
            requires_confirmation=True,
            event_id="s1",
            at="2026-03-01T10:00:00Z",
        ),
        b.confirmed("SO-1", event_id="c1", at="2026-03-01T10:30:00Z"),
        b.payment_failed("SO-1", event_id="f1", at="2026-03-01T10:40:00Z"),  # no change: no row
        b.paid("SO-1", 800, "P-1", event_id="p1", at="2026-03-01T10:45:00Z"),
        b.paid("SO-1", 1200, "P-2", event_id="p2", at="2026-03-01T11:00:00Z"),
        b.address_corrected("SO-1", event_id="a1", at="2026-03-01T11:05:00Z"),  # no change: no row
        b.dispatched("SO-1", [("SKU-A", 2)], "SH-1", event_id="d1", at="2026-03-02T09:00:00Z"),
        b.delivery_failed("SO-1", "SH-1", event_id="x1", at="2026-03-03T08:00:00Z"),
        b.delivered("SO-1", "SH-1", event_id="v1", at="2026-03-03T12:00:00Z"),  # still partially shipped
        b.dispatched("SO-1", [("SKU-B", 1)], "SH-2", event_id="d2", at="2026-03-04T09:00:00Z"),
        b.delivered("SO-1", "SH-2", event_id="v2", at="2026-03-05T10:00:00Z"),  # the engine completes the order
    )
    scene.project()
    found = status.report(scene.views, "SO-1")
    assert found is not None

    assert timeline(found) == [
        (1, instant("2026-03-01T10:00Z"), "PENDING_CONFIRMATION", "UNPAID", "OrderSubmitted"),
        (2, instant("2026-03-01T10:30Z"), "PENDING_PAYMENT", "UNPAID", "OrderConfirmed"),
        (3, instant("2026-03-01T10:45Z"), "PARTIALLY_PAID", "PARTIALLY_PAID", "PaymentCaptured"),
        (4, instant("2026-03-01T11:00Z"), "PENDING_SHIPMENT", "PAID", "PaymentCaptured"),
        (5, instant("2026-03-02T09:00Z"), "PARTIALLY_SHIPPED", "PAID", "ShipmentDispatched"),
        (6, instant("2026-03-04T09:00Z"), "SHIPPED", "PAID", "ShipmentDispatched"),
        (7, instant("2026-03-05T10:00Z"), "COMPLETED", "PAID", "OrderCompleted"),
    ]
    assert [row["event_id"] for row in found["timeline"][:6]] == ["s1", "c1", "p1", "p2", "d1", "d2"]
    assert {name: found[name] for name in ("status", "financial_status", "total", "paid", "refunded")} == {
        "status": "COMPLETED",
        "financial_status": "PAID",
        "total": 2000,
        "paid": 2000,
        "refunded": 0,
    }
    assert (found["units_ordered"], found["units_shipped"], found["units_delivered"]) == (3, 3, 3)
    assert (found["confirmed"], found["failed_payments"]) == (1, 1)
    assert (found["submitted_at"], found["completed_at"], found["cancelled_at"]) == (
        instant("2026-03-01T10:00Z"),
        instant("2026-03-05T10:00Z"),
        None,
    )
    assert found["lines"] == [
        {"sku": "SKU-A", "ordered": 2, "shipped": 2, "delivered": 2},
        {"sku": "SKU-B", "ordered": 1, "shipped": 1, "delivered": 1},
    ]
    assert found["holds"] == [
        {"sku": "SKU-A", "ordered": 2, "held": 0, "dispatched": 2, "released": 0},
        {"sku": "SKU-B", "ordered": 1, "held": 0, "dispatched": 1, "released": 0},
    ]


def test_lines_count_delivered_units_only_once_their_shipment_is_delivered(scene: Scene) -> None:
    scene.publish(
        b.submitted("SO-1", lines=[("SKU-A", 3, 500), ("SKU-B", 1, 500)], at="2026-03-01T10:00:00Z"),
        b.dispatched("SO-1", [("SKU-A", 1)], "SH-1", at="2026-03-02T09:00:00Z"),
        b.dispatched("SO-1", [("SKU-A", 1), ("SKU-Z", 1)], "SH-2", at="2026-03-02T10:00:00Z"),  # Z: never ordered
        b.delivered("SO-1", "SH-2", at="2026-03-03T09:00:00Z"),
    )
    scene.project()
    found = status.report(scene.views, "SO-1")
    assert found is not None

    assert found["lines"] == [
        {"sku": "SKU-A", "ordered": 3, "shipped": 2, "delivered": 1},
        {"sku": "SKU-B", "ordered": 1, "shipped": 0, "delivered": 0},
        {"sku": "SKU-Z", "ordered": 0, "shipped": 1, "delivered": 1},
    ]
    assert (found["status"], found["units_ordered"], found["units_shipped"], found["units_delivered"]) == (
        "PARTIALLY_SHIPPED",  # the unit of SKU-Z ships nothing that was ordered
        4,
        3,
        2,
    )


def test_a_delivery_recorded_before_its_dispatch_counts_when_the_dispatch_arrives(scene: Scene) -> None:
    scene.publish(
        b.submitted("SO-1", lines=[("SKU-A", 1, 500)], at="2026-03-01T10:00:00Z"),
        b.delivered("SO-1", "SH-1", at="2026-03-02T12:00:00Z"),
        b.dispatched("SO-1", [("SKU-A", 1)], "SH-1", at="2026-03-02T09:00:00Z"),
    )
    scene.project()
    found = status.report(scene.views, "SO-1")
    assert found is not None

    assert found["lines"] == [{"sku": "SKU-A", "ordered": 1, "shipped": 1, "delivered": 1}]
    assert found["status"] == "COMPLETED"


def test_a_cancelled_order_refunded_in_two_parts(scene: Scene) -> None:
    scene.publish(
        b.submitted("SO-2", lines=[("SKU-A", 1, 1000)], at="2026-03-01T10:00:00Z"),
        b.paid("SO-2", 1000, at="2026-03-01T10:05:00Z"),
        b.cancelled("SO-2", "OUT_OF_STOCK", "merchant", at="2026-03-01T12:00:00Z"),
        b.refunded("SO-2", 400, "R-1", at="2026-03-01T13:00:00Z"),
        b.refunded("SO-2", 600, "R-2", at="2026-03-02T13:00:00Z"),
    )
    scene.project()
    found = status.report(scene.views, "SO-2")
    assert found is not None

    assert timeline(found) == [
        (1, instant("2026-03-01T10:00Z"), "PENDING_PAYMENT", "UNPAID", "OrderSubmitted"),
        (2, instant("2026-03-01T10:05Z"), "PENDING_SHIPMENT", "PAID", "PaymentCaptured"),
        (3, instant("2026-03-01T12:00Z"), "CANCELLED", "PAID", "OrderCancelled"),
        (4, instant("2026-03-01T13:00Z"), "CANCELLED", "PARTIALLY_REFUNDED", "RefundIssued"),
        (5, instant("2026-03-02T13:00Z"), "CANCELLED", "REFUNDED", "RefundIssued"),
    ]
    assert (found["cancelled_at"], found["refunded"], found["updated_at"]) == (
        instant("2026-03-01T12:00Z"),
        1000,
        instant("2026-03-02T13:00Z"),
    )
    assert found["holds"] == [{"sku": "SKU-A", "ordered": 1, "held": 0, "dispatched": 0, "released": 1}]


def test_a_refused_request_changes_nothing_on_the_timeline(scene: Scene) -> None:
    scene.publish(
        b.submitted("SO-1", at="2026-03-01T10:00:00Z"),
        b.dispatched("SO-1", at="2026-03-02T10:00:00Z"),
    )
    results = scene.publish(b.cancelled("SO-1", at="2026-03-02T11:00:00Z"), accepted=False)
    assert [result.outcome for result in results] == ["refused"]
    scene.project()
    found = status.report(scene.views, "SO-1")
    assert found is not None

    assert [row["status"] for row in found["timeline"]] == ["PENDING_PAYMENT", "SHIPPED"]
    assert found["cancelled_at"] is None


def test_timeline_rows_are_numbered_across_projector_runs(scene: Scene) -> None:
    scene.publish(b.submitted("SO-1", at="2026-03-01T10:00:00Z"), b.paid("SO-1", 400, at="2026-03-01T10:05:00Z"))
    scene.project()
    scene.publish(b.paid("SO-1", 600, "P-2", at="2026-03-01T10:10:00Z"), b.dispatched("SO-1", at="2026-03-02T10:00Z"))
    scene.project()
    found = status.report(scene.views, "SO-1")
    assert found is not None

    assert [(row["seq"], row["status"]) for row in found["timeline"]] == [
        (1, "PENDING_PAYMENT"),
        (2, "PARTIALLY_PAID"),
        (3, "PENDING_SHIPMENT"),
        (4, "SHIPPED"),
    ]


def test_an_order_never_seen_has_no_status_and_holds_are_empty_without_the_holds_view(scene: Scene) -> None:
    scene.publish(b.submitted("SO-1", at="2026-03-01T10:00:00Z"))
    scene.project([OrderStatus])

    assert status.report(scene.views, "SO-404") is None
    found = status.report(scene.views, "SO-1")
    assert found is not None
    assert (found["status"], found["holds"]) == ("PENDING_PAYMENT", [])
