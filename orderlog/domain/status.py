"""The two status dimensions of an order, and how each follows from the figures.

Statuses are derived, never stored: an order's status is a function of what has been
recorded (payments, dispatches, deliveries, cancellation, completion). That is what
keeps "shipped" in one system from disagreeing with "pending shipment" in another:
there is only one rule, here.
"""

from enum import StrEnum


class Status(StrEnum):
    """The eight order states of the source documents (seeds/002), codes 01-08."""

    PENDING_CONFIRMATION = "PENDING_CONFIRMATION"
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PARTIALLY_PAID = "PARTIALLY_PAID"
    PENDING_SHIPMENT = "PENDING_SHIPMENT"
    PARTIALLY_SHIPPED = "PARTIALLY_SHIPPED"
    SHIPPED = "SHIPPED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


class FinancialStatus(StrEnum):
    UNPAID = "UNPAID"
    PARTIALLY_PAID = "PARTIALLY_PAID"
    PAID = "PAID"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"


CANCELLABLE = frozenset(
    {
        Status.PENDING_CONFIRMATION,
        Status.PENDING_PAYMENT,
        Status.PARTIALLY_PAID,
        Status.PENDING_SHIPMENT,
    }
)


def order_status(
    *,
    cancelled: bool,
    completed: bool,
    awaiting_confirmation: bool,
    units_ordered: int,
    units_dispatched_of_ordered: int,
    paid: int,
    total: int,
) -> Status:
    """Cancellation and completion are final; physical dispatch outranks paperwork.

    A dispatch reported before confirmation or payment is a fact: the order *is*
    partially shipped, and the exception queue flags the missing payment separately.
    """
    if cancelled:
        return Status.CANCELLED
    if completed:
        return Status.COMPLETED
    if units_dispatched_of_ordered > 0:
        if units_dispatched_of_ordered >= units_ordered:
            return Status.SHIPPED
        return Status.PARTIALLY_SHIPPED
    if awaiting_confirmation:
        return Status.PENDING_CONFIRMATION
    if paid >= total:
        return Status.PENDING_SHIPMENT
    if paid > 0:
        return Status.PARTIALLY_PAID
    return Status.PENDING_PAYMENT


def financial_status(*, paid: int, refunded: int, total: int) -> FinancialStatus:
    """Refunds dominate: once money went back, the question is whether all of it did."""
    if refunded > 0:
        return FinancialStatus.REFUNDED if refunded >= paid else FinancialStatus.PARTIALLY_REFUNDED
    if paid >= total:
        return FinancialStatus.PAID
    if paid > 0:
        return FinancialStatus.PARTIALLY_PAID
    return FinancialStatus.UNPAID
