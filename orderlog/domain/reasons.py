"""The cancellation reason taxonomy: one fixed list, each code with its category.

Taken from the source documents (seeds/000): customer, merchant and external causes,
plus the engine's own payment timeout. Analysts group cancellations by category, so a
code never changes category; new codes are added, never renamed.
"""

from enum import StrEnum


class ReasonCategory(StrEnum):
    CUSTOMER = "customer"
    MERCHANT = "merchant"
    EXTERNAL = "external"
    SYSTEM = "system"
    OTHER = "other"


CANCELLATION_REASONS: dict[str, ReasonCategory] = {
    "PRICE_NOT_AS_EXPECTED": ReasonCategory.CUSTOMER,
    "ITEM_NOT_AS_DESCRIBED": ReasonCategory.CUSTOMER,
    "PAYMENT_DIFFICULTY": ReasonCategory.CUSTOMER,
    "SLOW_DELIVERY": ReasonCategory.CUSTOMER,
    "POOR_SERVICE": ReasonCategory.CUSTOMER,
    "CHANGED_MIND": ReasonCategory.CUSTOMER,
    "POOR_PLATFORM_EXPERIENCE": ReasonCategory.CUSTOMER,
    "OUT_OF_STOCK": ReasonCategory.MERCHANT,
    "PRICING_ERROR": ReasonCategory.MERCHANT,
    "PROMOTION_ERROR": ReasonCategory.MERCHANT,
    "LOGISTICS_UNAVAILABLE": ReasonCategory.MERCHANT,
    "SYSTEM_ERROR": ReasonCategory.MERCHANT,
    "POLICY_CHANGE": ReasonCategory.EXTERNAL,
    "FORCE_MAJEURE": ReasonCategory.EXTERNAL,
    "PAYMENT_PROVIDER_OUTAGE": ReasonCategory.EXTERNAL,
    "FRAUD_SUSPECTED": ReasonCategory.EXTERNAL,
    "PAYMENT_TIMEOUT": ReasonCategory.SYSTEM,
    "OTHER": ReasonCategory.OTHER,
}

REASON_NEEDING_NOTE = "OTHER"


def reason_category(reason_code: str) -> ReasonCategory:
    return CANCELLATION_REASONS[reason_code]
