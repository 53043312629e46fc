"""The order page's progress bar: the steps an order of its kind takes, and those it has taken."""

from __future__ import annotations

from orderlog.console.routes.orders import _progress
from orderlog.domain.status import Status


def steps(status: Status, *, requires_confirmation: bool) -> list[tuple[str, bool]]:
    return [(step["name"], step["done"]) for step in _progress(status, requires_confirmation=requires_confirmation)]


def test_an_order_that_needs_no_confirmation_shows_no_confirmation_step() -> None:
    assert steps(Status.PENDING_PAYMENT, requires_confirmation=False) == [
        ("submitted", True),
        ("paid", False),
        ("shipped", False),
        ("completed", False),
    ]


def test_an_order_awaiting_confirmation_has_taken_only_its_first_step() -> None:
    assert steps(Status.PENDING_CONFIRMATION, requires_confirmation=True) == [
        ("submitted", True),
        ("confirmed", False),
        ("paid", False),
        ("shipped", False),
        ("completed", False),
    ]


def test_a_completed_order_has_taken_every_step() -> None:
    assert all(done for _name, done in steps(Status.COMPLETED, requires_confirmation=True))
    assert all(done for _name, done in steps(Status.COMPLETED, requires_confirmation=False))
