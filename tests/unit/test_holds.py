"""Inventory holds, a rule at a time: a hold is placed at submission, released at
cancellation, converted at dispatch; on hand is the last count (by event time) minus what
was dispatched after it, whatever order counts and dispatches arrive in; available below
zero is oversold and comes first."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from projections import holds
from tests import builders as b
from tests.read_models import Scene, instant


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    scene = Scene(tmp_path)
    yield scene
    scene.close()


def by_sku(scene: Scene, **filters: Any) -> dict[str, dict[str, Any]]:
    return {row["sku"]: row for row in holds.report(scene.views, **filters)["skus"]}


def figures(row: dict[str, Any]) -> tuple[Any, ...]:
    return row["held"], row["on_hand"], row["available"]


def test_a_hold_is_placed_at_submission_for_every_line(scene: Scene) -> None:
    scene.publish(
        b.stock_counted("SKU-A", 10, at="2026-03-01T08:00:00Z"),
        b.submitted("SO-1", lines=[("SKU-A", 2, 500), ("SKU-B", 1, 900)], at="2026-03-01T09:00:00Z"),
        b.submitted("SO-2", lines=[("SKU-A", 3, 500)], at="2026-03-01T09:30:00Z"),
    )
    scene.project()

    skus = by_sku(scene)
    assert figures(skus["SKU-A"]) == (5, 10, 5)
    assert figures(skus["SKU-B"]) == (1, None, None)  # never counted: nothing is known on hand
    assert holds.report(scene.views, order_id="SO-1")["orders"] == [
        {"order_id": "SO-1", "sku": "SKU-A", "ordered": 2, "held": 2, "dispatched": 0, "released": 0},
        {"order_id": "SO-1", "sku": "SKU-B", "ordered": 1, "held": 1, "dispatched": 0, "released": 0},
    ]


def test_a_hold_is_released_at_cancellation_and_the_shelf_is_untouched(scene: Scene) -> None:
    scene.publish(
        b.stock_counted("SKU-A", 10, at="2026-03-01T08:00:00Z"),
        b.submitted("SO-1", lines=[("SKU-A", 3, 500)], at="2026-03-01T09:00:00Z"),
        b.submitted("SO-2", lines=[("SKU-A", 4, 500)], at="2026-03-01T09:10:00Z"),
        b.cancelled("SO-1", at="2026-03-01T09:30:00Z"),
    )
    scene.project()

    assert figures(by_sku(scene)["SKU-A"]) == (4, 10, 6)
    assert holds.report(scene.views, sku="SKU-A")["orders"] == [  # only the orders still holding it
        {"order_id": "SO-2", "sku": "SKU-A", "ordered": 4, "held": 4, "dispatched": 0, "released": 0},
    ]
    assert holds.report(scene.views, order_id="SO-1")["orders"] == [
        {"order_id": "SO-1", "sku": "SKU-A", "ordered": 3, "held": 0, "dispatched": 0, "released": 3},
    ]


def test_a_hold_is_converted_at_dispatch_held_and_on_hand_both_go_down(scene: Scene) -> None:
    scene.publish(
        b.stock_counted("SKU-A", 10, at="2026-03-01T08:00:00Z"),
        b.submitted("SO-1", lines=[("SKU-A", 3, 500)], at="2026-03-01T09:00:00Z"),
        b.paid("SO-1", 1500, at="2026-03-01T09:05:00Z"),
        b.dispatched("SO-1", [("SKU-A", 2)], "SH-1", at="2026-03-01T10:00:00Z"),
    )
    scene.project()
    row = by_sku(scene)["SKU-A"]
    assert figures(row) == (1, 8, 7)
    assert (row["counted"], row["dispatched_since_count"]) == (10, 2)

    scene.publish(b.dispatched("SO-1", [("SKU-A", 1)], "SH-2", at="2026-03-01T11:00:00Z"))
    scene.project()
    assert figures(by_sku(scene)["SKU-A"]) == (0, 7, 7)
    assert holds.report(scene.views, order_id="SO-1")["orders"] == [
        {"order_id": "SO-1", "sku": "SKU-A", "ordered": 3, "held": 0, "dispatched": 3, "released": 0},
    ]


def test_a_dispatch_of_an_sku_never_ordered_takes_it_off_the_shelf_and_holds_nothing(scene: Scene) -> None:
    scene.publish(
        b.stock_counted("SKU-Z", 5, at="2026-03-01T08:00:00Z"),
        b.submitted("SO-1", lines=[("SKU-A", 2, 500)], at="2026-03-01T09:00:00Z"),
        b.dispatched("SO-1", [("SKU-A", 2), ("SKU-Z", 1)], at="2026-03-01T10:00:00Z"),
    )
    scene.project()

    skus = by_sku(scene)
    assert figures(skus["SKU-Z"]) == (0, 4, 4)
    assert figures(skus["SKU-A"]) == (0, None, None)
    assert holds.report(scene.views, order_id="SO-1")["orders"] == [
        {"order_id": "SO-1", "sku": "SKU-A", "ordered": 2, "held": 0, "dispatched": 2, "released": 0},
        {"order_id": "SO-1", "sku": "SKU-Z", "ordered": 0, "held": 0, "dispatched": 1, "released": 0},
    ]


def test_more_dispatched_than_ordered_converts_only_the_hold(scene: Scene) -> None:
    scene.publish(
        b.stock_counted("SKU-A", 10, at="2026-03-01T08:00:00Z"),
        b.submitted("SO-1", lines=[("SKU-A", 2, 500)], at="2026-03-01T09:00:00Z"),
        b.submitted("SO-2", lines=[("SKU-A", 1, 500)], at="2026-03-01T09:00:00Z"),
        b.dispatched("SO-1", [("SKU-A", 3)], at="2026-03-01T10:00:00Z"),
    )
    scene.project()

    assert figures(by_sku(scene)["SKU-A"]) == (1, 7, 6)  # SO-2's hold stays whole


def test_a_count_after_dispatches_already_includes_them(scene: Scene) -> None:
    scene.publish(
        b.stock_counted("SKU-A", 10, at="2026-03-01T08:00:00Z"),
        b.submitted("SO-1", lines=[("SKU-A", 5, 500)], at="2026-03-01T09:00:00Z"),
        b.dispatched("SO-1", [("SKU-A", 2)], "SH-1", at="2026-03-01T10:00:00Z"),
        b.stock_counted("SKU-A", 7, at="2026-03-01T11:00:00Z"),  # the shelf after the dispatch
        b.dispatched("SO-1", [("SKU-A", 1)], "SH-2", at="2026-03-01T12:00:00Z"),
    )
    scene.project()

    row = by_sku(scene)["SKU-A"]
    assert figures(row) == (2, 6, 4)
    assert (row["counted"], row["counted_at"], row["dispatched_since_count"]) == (7, instant("2026-03-01T11:00Z"), 1)


def test_a_dispatch_arriving_after_a_later_count_is_not_subtracted_again(scene: Scene) -> None:
    scene.publish(
        b.submitted("SO-1", lines=[("SKU-A", 5, 500)], at="2026-03-01T09:00:00Z"),
        b.stock_counted("SKU-A", 7, at="2026-03-01T11:00:00Z"),
        b.dispatched("SO-1", [("SKU-A", 2)], at="2026-03-01T10:00:00Z"),  # happened before the count, arrived after
    )
    scene.project()

    row = by_sku(scene)["SKU-A"]
    assert figures(row) == (3, 7, 4)
    assert row["dispatched_since_count"] == 0


def test_an_older_count_arriving_late_is_ignored(scene: Scene) -> None:
    scene.publish(
        b.stock_counted("SKU-A", 7, at="2026-03-01T11:00:00Z"),
        b.submitted("SO-1", lines=[("SKU-A", 1, 500)], at="2026-03-01T11:30:00Z"),
        b.stock_counted("SKU-A", 50, at="2026-03-01T08:00:00Z"),
    )
    scene.project()

    row = by_sku(scene)["SKU-A"]
    assert (row["counted"], row["counted_at"]) == (7, instant("2026-03-01T11:00Z"))
    assert figures(row) == (1, 7, 6)


ARRIVALS = list(itertools.permutations(["count 08:00", "dispatch 10:00", "count 11:00", "dispatch 12:00"]))


@pytest.mark.parametrize("batch", [1, 5_000])
def test_counts_and_dispatches_meet_in_event_time_whatever_order_they_arrive_in(scene: Scene, batch: int) -> None:
    """Every order of arrival of two counts and two dispatches (one SKU per order of arrival,
    all in one store), folded a record per transaction and all at once: the same figures."""
    for number, arrival in enumerate(ARRIVALS):
        sku, order_id = f"SKU-{number:02d}", f"SO-{number:02d}"
        events = {
            "count 08:00": b.stock_counted(sku, 10, at="2026-03-01T08:00:00Z"),
            "dispatch 10:00": b.dispatched(order_id, [(sku, 2)], "SH-1", at="2026-03-01T10:00:00Z"),
            "count 11:00": b.stock_counted(sku, 7, at="2026-03-01T11:00:00Z"),
            "dispatch 12:00": b.dispatched(order_id, [(sku, 1)], "SH-2", at="2026-03-01T12:00:00Z"),
        }
        scene.publish(
            b.submitted(order_id, lines=[(sku, 5, 500)], at="2026-03-01T09:00:00Z"),
            *(events[name] for name in arrival),
        )
    scene.project(batch=batch)

    skus = by_sku(scene)
    found = {
        arrival: (
            skus[f"SKU-{n:02d}"]["counted"],
            skus[f"SKU-{n:02d}"]["dispatched_since_count"],
            figures(skus[f"SKU-{n:02d}"]),
        )
        for n, arrival in enumerate(ARRIVALS)
    }
    assert found == dict.fromkeys(ARRIVALS, (7, 1, (2, 6, 4)))


def test_oversold_skus_come_first_most_oversold_first_then_least_available_then_uncounted(scene: Scene) -> None:
    scene.publish(
        b.stock_counted("SKU-A", 1, at="2026-03-01T08:00:00Z"),
        b.stock_counted("SKU-B", 20, at="2026-03-01T08:00:00Z"),
        b.stock_counted("SKU-D", 0, at="2026-03-01T08:00:00Z"),
        b.stock_counted("SKU-E", 4, at="2026-03-01T08:00:00Z"),
        b.submitted("SO-1", lines=[("SKU-A", 2, 500), ("SKU-C", 1, 500)], at="2026-03-01T09:00:00Z"),
        b.submitted("SO-2", lines=[("SKU-B", 1, 500), ("SKU-D", 3, 500)], at="2026-03-01T09:00:00Z"),
    )
    scene.project()

    rows = holds.report(scene.views)["skus"]
    assert [(row["sku"], row["available"]) for row in rows] == [
        ("SKU-D", -3),
        ("SKU-A", -1),
        ("SKU-E", 4),
        ("SKU-B", 19),
        ("SKU-C", None),
    ]
    assert holds.report(scene.views)["orders"] == []  # per-order rows only when asked for


def test_filters_by_sku_and_by_order(scene: Scene) -> None:
    scene.publish(
        b.stock_counted("SKU-A", 10, at="2026-03-01T08:00:00Z"),
        b.submitted("SO-1", lines=[("SKU-A", 1, 500), ("SKU-B", 2, 500)], at="2026-03-01T09:00:00Z"),
        b.submitted("SO-2", lines=[("SKU-A", 2, 500)], at="2026-03-01T09:00:00Z"),
        b.submitted("SO-3", lines=[("SKU-C", 2, 500)], at="2026-03-01T09:00:00Z"),
    )
    scene.project()

    one_sku = holds.report(scene.views, sku="SKU-A")
    assert [row["sku"] for row in one_sku["skus"]] == ["SKU-A"]
    assert [(row["order_id"], row["held"]) for row in one_sku["orders"]] == [("SO-1", 1), ("SO-2", 2)]

    one_order = holds.report(scene.views, order_id="SO-1")
    assert [row["sku"] for row in one_order["skus"]] == ["SKU-A", "SKU-B"]  # SKU-B: uncounted, last
    assert [(row["order_id"], row["sku"]) for row in one_order["orders"]] == [("SO-1", "SKU-A"), ("SO-1", "SKU-B")]

    assert holds.report(scene.views, sku="SKU-NONE") == {"skus": [], "orders": []}
    assert holds.report(scene.views, order_id="SO-NONE") == {"skus": [], "orders": []}
