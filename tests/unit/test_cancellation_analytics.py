"""Cancellation analytics on a small history whose every figure is computed by hand below:
each dimension, window edges in event time (since inclusive, until exclusive, for
submissions and cancellations alike), time to cancel, value per currency, refund cycle
(nearest-rank p50 and p90), repeat cancellers.

The history (March 2026; times are "day hour:minute" of event time):

    order  channel  customer  lines         total     submitted
    SO-1   web      C-1       A x1          1000 CNY  01 10:00
    SO-2   app      C-1       A x1, B x1    1000 CNY  01 11:00
    SO-3   app      C-1       B x2          1000 CNY  01 12:00
    SO-4   web      C-2       C x2          2000 USD  01 13:00  (needs confirmation, never given)
    SO-5   tmall    C-3       A x1          1000 CNY  02 09:00  (paid, dispatched: not cancelled)
    SO-6   app      C-2       C x3          3000 CNY  02 10:00
    SO-7   web      C-4       B x1           500 CNY  03 08:00
    SO-8   app      C-4       A x2          1000 CNY  03 09:00  (not cancelled)

    order  cancelled  reason           stage then             after    money
    SO-1   01 10:30   CHANGED_MIND     before_payment          30 min  none taken
    SO-2   01 15:00   OUT_OF_STOCK     paid_not_shipped       240 min  1000 paid 11:10, back 17:00 (2 h)
    SO-3   02 12:00   FORCE_MAJEURE    partially_paid          24 h    400 paid 12:05, back 150 + 250 by 22:00 (10 h)
    SO-4   05 13:00   PAYMENT_TIMEOUT  awaiting_confirmation    4 d    none taken
    SO-6   02 10:59   CHANGED_MIND     paid_not_shipped        59 min  3000 paid 10:01, back 11:29 (0.5 h)
    SO-7   03 09:00   PRICING_ERROR    paid_not_shipped        60 min  500 paid 08:10, never back
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from projections import cancellations
from tests import builders as b
from tests.read_models import Scene, instant

DAY = "2026-03-0"


def at(day: int, clock: str) -> str:
    return f"{DAY}{day}T{clock}:00Z"


def order(
    order_id: str, channel: str, customer: str, lines: list[tuple[str, int, int]], submitted: str, **fields: Any
) -> dict[str, Any]:
    envelope = b.submitted(order_id, lines=lines, customer_id=customer, at=submitted, **fields)
    envelope["data"]["channel"] = channel
    return envelope


def history() -> list[dict[str, Any]]:
    usd = order("SO-4", "web", "C-2", [("SKU-C", 2, 1000)], at(1, "13:00"), requires_confirmation=True)
    usd["data"]["currency"] = "USD"
    return [
        order("SO-1", "web", "C-1", [("SKU-A", 1, 1000)], at(1, "10:00")),
        b.cancelled("SO-1", "CHANGED_MIND", "customer", at=at(1, "10:30")),
        order("SO-2", "app", "C-1", [("SKU-A", 1, 500), ("SKU-B", 1, 500)], at(1, "11:00")),
        b.paid("SO-2", 1000, "P-2", at=at(1, "11:10")),
        b.cancelled("SO-2", "OUT_OF_STOCK", "merchant", at=at(1, "15:00")),
        b.refunded("SO-2", 1000, "R-2", at=at(1, "17:00")),
        order("SO-3", "app", "C-1", [("SKU-B", 2, 500)], at(1, "12:00")),
        b.paid("SO-3", 400, "P-3", at=at(1, "12:05")),
        b.cancelled("SO-3", "FORCE_MAJEURE", "platform", at=at(2, "12:00")),
        b.refunded("SO-3", 150, "R-3a", at=at(2, "20:00")),  # the refund is complete with the second part
        b.refunded("SO-3", 250, "R-3b", at=at(2, "22:00")),
        usd,
        b.cancelled("SO-4", "PAYMENT_TIMEOUT", "system", at=at(5, "13:00")),
        order("SO-5", "tmall", "C-3", [("SKU-A", 1, 1000)], at(2, "09:00")),
        b.paid("SO-5", 1000, "P-5", at=at(2, "09:05")),
        b.dispatched("SO-5", [("SKU-A", 1)], at=at(2, "12:00")),
        order("SO-6", "app", "C-2", [("SKU-C", 3, 1000)], at(2, "10:00")),
        b.paid("SO-6", 3000, "P-6", at=at(2, "10:01")),
        b.cancelled("SO-6", "CHANGED_MIND", "customer", at=at(2, "10:59")),
        b.refunded("SO-6", 3000, "R-6", at=at(2, "11:29")),
        order("SO-7", "web", "C-4", [("SKU-B", 1, 500)], at(3, "08:00")),
        b.paid("SO-7", 500, "P-7", at=at(3, "08:10")),
        b.cancelled("SO-7", "PRICING_ERROR", "merchant", at=at(3, "09:00")),
        order("SO-8", "app", "C-4", [("SKU-A", 2, 500)], at(3, "09:00")),
    ]


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    scene = Scene(tmp_path_factory.mktemp("cancellations"))
    scene.publish(*history())
    scene.project(batch=7)  # several transactions: rows re-read from the view database between them
    yield scene
    scene.close()


def report(scene: Scene, by: str = "reason", since: str | None = None, until: str | None = None) -> dict[str, Any]:
    return cancellations.report(scene.views, by=by, since=since and instant(since), until=until and instant(until))


def groups(found: dict[str, Any]) -> list[tuple[Any, ...]]:
    by = found["by"]
    return [
        (group[by], group["cancelled"], group["share"], group["submitted"], group["rate"]) for group in found["groups"]
    ]


def test_headline_figures_over_all_time(scene: Scene) -> None:
    found = report(scene)
    assert (found["submitted"], found["cancelled"], found["cancellation_rate"]) == (8, 6, 0.75)
    assert (found["since"], found["until"]) == (None, None)


def test_by_reason_rates_are_over_all_orders_submitted(scene: Scene) -> None:
    assert groups(report(scene, "reason")) == [
        ("CHANGED_MIND", 2, 0.3333, None, 0.25),
        ("FORCE_MAJEURE", 1, 0.1667, None, 0.125),
        ("OUT_OF_STOCK", 1, 0.1667, None, 0.125),
        ("PAYMENT_TIMEOUT", 1, 0.1667, None, 0.125),
        ("PRICING_ERROR", 1, 0.1667, None, 0.125),
    ]


def test_by_category_follows_the_reason_taxonomy(scene: Scene) -> None:
    assert groups(report(scene, "category")) == [
        ("customer", 2, 0.3333, None, 0.25),
        ("merchant", 2, 0.3333, None, 0.25),
        ("external", 1, 0.1667, None, 0.125),
        ("system", 1, 0.1667, None, 0.125),
    ]


def test_by_channel_rates_are_over_the_orders_submitted_on_that_channel(scene: Scene) -> None:
    assert groups(report(scene, "channel")) == [
        ("app", 3, 0.5, 4, 0.75),
        ("web", 3, 0.5, 3, 1.0),
    ]


def test_by_sku_counts_orders_containing_the_sku(scene: Scene) -> None:
    assert groups(report(scene, "sku")) == [
        ("SKU-B", 3, 0.5, 3, 1.0),
        ("SKU-A", 2, 0.3333, 4, 0.5),
        ("SKU-C", 2, 0.3333, 2, 1.0),
    ]


def test_by_day_counts_cancellations_on_the_day_they_happened(scene: Scene) -> None:
    assert groups(report(scene, "day")) == [
        ("2026-03-01", 2, 0.3333, 4, 0.5),
        ("2026-03-02", 2, 0.3333, 2, 1.0),
        ("2026-03-03", 1, 0.1667, 2, 0.5),
        ("2026-03-05", 1, 0.1667, None, None),  # nothing was submitted that day
    ]


def test_by_stage_at_cancellation(scene: Scene) -> None:
    assert groups(report(scene, "stage")) == [
        ("paid_not_shipped", 3, 0.5, None, 0.375),
        ("awaiting_confirmation", 1, 0.1667, None, 0.125),
        ("before_payment", 1, 0.1667, None, 0.125),
        ("partially_paid", 1, 0.1667, None, 0.125),
    ]


def test_time_to_cancel_buckets_and_the_share_within_24_hours(scene: Scene) -> None:
    found = report(scene)
    # 30 and 59 min; 60 min (an hour is no longer "< 1 h") and 240 min; exactly 24 h; 4 days
    assert found["time_to_cancel"] == {"< 1 h": 2, "1-24 h": 2, "1-3 d": 1, "> 3 d": 1}
    assert found["cancelled_within_24h"] == 0.6667


def test_value_of_cancelled_orders_per_currency(scene: Scene) -> None:
    assert report(scene)["cancelled_value"] == {"CNY": 6500, "USD": 2000}


def test_refund_cycle_nearest_rank_percentiles(scene: Scene) -> None:
    # complete refunds after 0.5 h (SO-6), 2 h (SO-2), 10 h (SO-3, with its second part):
    # p50 is the 2nd of 3 (rank ceil(1.5)), p90 the 3rd (rank ceil(2.7))
    cycle = report(scene)["refund_cycle_hours"]
    assert (cycle["refunded"], cycle["p50"], cycle["p90"]) == (3, 2.0, 10.0)


def test_not_refunded_counts_only_cancelled_orders_that_took_money(scene: Scene) -> None:
    # SO-7 paid 500 and never got it back; SO-1 and SO-4 (awaiting confirmation) took nothing
    assert report(scene)["refund_cycle_hours"]["not_refunded"] == 1


def test_repeat_cancellers_have_three_or_more_cancellations_in_the_window(scene: Scene) -> None:
    assert report(scene)["repeat_cancellers"] == [{"customer_id": "C-1", "cancellations": 3}]  # C-2 has two
    assert report(scene, since=at(1, "15:00"))["repeat_cancellers"] == []  # SO-1 is before the window


def test_the_window_includes_since_for_cancellations_and_excludes_until_for_both(scene: Scene) -> None:
    # cancellations at since (SO-2, 01 15:00) count; at until (SO-7, 03 09:00) do not;
    # submissions at until (SO-8, 03 09:00) do not
    found = report(scene, since=at(1, "15:00"), until=at(3, "09:00"))
    assert (found["submitted"], found["cancelled"], found["cancellation_rate"]) == (3, 3, 1.0)  # SO-5,6,7; SO-2,3,6
    assert (found["since"], found["until"]) == (instant(at(1, "15:00")), instant(at(3, "09:00")))
    assert groups(found) == [
        ("CHANGED_MIND", 1, 0.3333, None, 0.3333),
        ("FORCE_MAJEURE", 1, 0.3333, None, 0.3333),
        ("OUT_OF_STOCK", 1, 0.3333, None, 0.3333),
    ]
    assert found["cancelled_value"] == {"CNY": 5000}
    assert found["time_to_cancel"] == {"< 1 h": 1, "1-24 h": 1, "1-3 d": 1, "> 3 d": 0}

    a_millisecond_later = report(scene, since="2026-03-01T15:00:00.001Z", until=at(3, "09:00"))
    assert a_millisecond_later["cancelled"] == 2


def test_the_window_includes_since_for_submissions(scene: Scene) -> None:
    found = report(scene, since=at(2, "09:00"), until=at(3, "09:00"))  # SO-5 was submitted at since
    assert (found["submitted"], found["cancelled"]) == (3, 2)  # SO-5,6,7; SO-3, SO-6
    assert report(scene, since="2026-03-02T09:00:00.001Z", until=at(3, "09:00"))["submitted"] == 2
    assert report(scene, until="2026-03-03T09:00:00.001Z")["submitted"] == 8  # SO-8 is in once until passes it


def test_groups_follow_the_window(scene: Scene) -> None:
    found = report(scene, "channel", since=at(2, "00:00"), until=at(4, "00:00"))
    # cancelled in the window: SO-3 (app), SO-6 (app), SO-7 (web); submitted: SO-5 (tmall), SO-6, SO-8 (app), SO-7 (web)
    assert groups(found) == [("app", 2, 0.6667, 2, 1.0), ("web", 1, 0.3333, 1, 1.0)]
    by_sku = report(scene, "sku", since=at(2, "00:00"), until=at(4, "00:00"))
    # cancelled: SO-3 (B), SO-6 (C), SO-7 (B); submitted: SO-5 (A), SO-6 (C), SO-7 (B), SO-8 (A).
    # Each is counted by when it happened, so SKU-B's rate is 2 of 1 (SO-3 was submitted before the window).
    assert groups(by_sku) == [("SKU-B", 2, 0.6667, 1, 2.0), ("SKU-C", 1, 0.3333, 1, 1.0)]


def test_an_empty_window_has_no_rates(scene: Scene) -> None:
    found = report(scene, since="2027-01-01T00:00:00Z")
    assert (found["submitted"], found["cancelled"], found["cancellation_rate"], found["groups"]) == (0, 0, None, [])
    assert found["refund_cycle_hours"] == {"refunded": 0, "p50": None, "p90": None, "not_refunded": 0}
    assert found["cancelled_within_24h"] is None
