"""`customer forget`: erase a customer's personal data by destroying their data keys.

The erasure is recorded first, as a CustomerErased record (who, when, why) in the tamper-
evident log, and the keys destroyed after; if the process dies in between, running the
command again destroys what is left. Every other fact of the customer's orders stays, and
verification still passes, because hashes cover ciphertext.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orderlog.domain.customer import Customer
from orderlog.domain.engine import own_record

if TYPE_CHECKING:
    from orderlog.application import OrderLog


class ErasureError(Exception):
    """Nothing to erase: an unknown customer, or one already erased."""


def forget_customer(app: OrderLog, customer_id: str, by: str, reason: str) -> int:
    """Destroys the customer's data keys; returns how many were destroyed."""
    keys = app.vault.customer_key_count(customer_id)
    if keys == 0:
        erased = app.stream(Customer, customer_id)
        if erased is not None and erased.erasures:
            last = erased.erasures[-1]
            raise ErasureError(
                f"customer {customer_id} was already erased at {last['at']} by {last['by']}; "
                "nothing of theirs is left to destroy"
            )
        raise ErasureError(f"customer {customer_id} is not known: no personal data of theirs is stored")
    app.record_own(Customer, own_record("CustomerErased", customer_id, {"reason": reason, "keys_destroyed": keys}, by))
    return app.vault.destroy_customer_keys(customer_id)
