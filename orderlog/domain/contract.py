"""The upstream event contract: every event type and its fields, declared once.

Upstream services (shops, marketplaces, ERP, payment, warehouse, carriers) publish JSON
envelopes; this module is the single declaration of what they may send. Everything
else is derived from it: validation (pydantic, strict: no silent coercion of "5" to 5
or 5.0 to 5), the Avro schemas in schemas/, the README's examples, the stored form.

Money is an integer amount of minor units (fen, cents) in the order's currency. Every
time must carry a zone. Integers stay below 2**53 so that the RFC 8785 canonical form
(used for hashes and signatures) is exact in every language.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    create_model,
    model_validator,
)

from orderlog.domain.instants import normalise_instant
from orderlog.domain.money import MONEY
from orderlog.domain.reasons import CANCELLATION_REASONS, REASON_NEEDING_NOTE
from orderlog.domain.text import UNSAFE_CLASS, character_name, unsafe_character

MAX_SAFE_INTEGER = 2**53 - 1

IDENTIFIER_PATTERN = rf"^[^\s{UNSAFE_CLASS}](?:[^{UNSAFE_CLASS}]*[^\s{UNSAFE_CLASS}])?$"
TEXT_PATTERN = rf"^[^{UNSAFE_CLASS}]*[^\s{UNSAFE_CLASS}][^{UNSAFE_CLASS}]*$"
PROSE_PATTERN = rf"^[^{UNSAFE_CLASS}]*$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=IDENTIFIER_PATTERN)]
"""An id from an upstream system: 1-128 characters, no blanks around it, nothing unsafe
(orderlog.domain.text: no control, bidirectional or zero-width characters)."""

Text = Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=TEXT_PATTERN)]
"""A short non-blank text, nothing unsafe."""

FreeText = Annotated[str, StringConstraints(max_length=2000, pattern=PROSE_PATTERN)]
"""Optional prose (a note); may be empty, nothing unsafe (one line)."""

AddressPart = Annotated[str, StringConstraints(max_length=500, pattern=PROSE_PATTERN)]
"""Part of an address: present, but possibly empty or malformed (flagged, not refused)."""

Money = Annotated[int, Strict(), Field(ge=0, le=MAX_SAFE_INTEGER), MONEY]
PositiveMoney = Annotated[int, Strict(), Field(gt=0, le=MAX_SAFE_INTEGER), MONEY]
Quantity = Annotated[int, Strict(), Field(gt=0, le=10_000_000)]
Count = Annotated[int, Strict(), Field(ge=0, le=MAX_SAFE_INTEGER)]
Flag = Annotated[bool, Strict()]
Currency = Annotated[str, StringConstraints(pattern=CURRENCY_PATTERN)]
Instant = Annotated[str, AfterValidator(normalise_instant)]
ReasonCode = Literal[tuple(CANCELLATION_REASONS)]  # type: ignore[valid-type]


def pattern_mismatch(value: str, pattern: str) -> str:
    """What is wrong with a string that failed one of the patterns above, in words."""
    if pattern == CURRENCY_PATTERN:
        return "should be a three-letter ISO 4217 currency code in capitals, such as CNY"
    found = unsafe_character(value)
    if found is not None:
        position, character = found
        return (
            f"holds {character_name(character)} at position {position}: ids and texts may not hold "
            "control, bidirectional or zero-width characters"
        )
    if not value.strip():
        return "is blank"
    if pattern == IDENTIFIER_PATTERN:
        return "has blanks at its start or end"
    return "is not allowed here"


class Contract(BaseModel):
    """Closed records: unknown fields are errors, not ignored. Numbers and flags are strict
    (no "5" for 5, no 5.0 for 5, no 1 for true); JSON strings are never coerced anyway."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- shared parts


class OrderLine(Contract):
    sku: Identifier
    qty: Quantity
    unit_price: Money


class ShippedLine(Contract):
    sku: Identifier
    qty: Quantity


class Address(Contract):
    name: AddressPart
    phone: AddressPart
    line1: AddressPart
    city: AddressPart
    postal_code: AddressPart
    country: AddressPart


PERSONAL_ADDRESS_FIELDS = ("name", "phone", "line1", "postal_code")
"""Encrypted per customer before they are stored; erased with the customer's key."""


class SealedAddress(Contract):
    """An address as stored: personal parts encrypted, validity decided on write."""

    city: AddressPart
    country: AddressPart
    encrypted: str
    valid: Flag
    problems: list[str]


def _unique_skus(lines: list[Any]) -> list[Any]:
    seen: set[str] = set()
    for index, line in enumerate(lines):
        if line.sku in seen:
            raise ValueError(f"lines[{index}]: sku {line.sku!r} appears twice; merge the lines")
        seen.add(line.sku)
    return lines


OrderLines = Annotated[list[OrderLine], Field(min_length=1, max_length=1000), AfterValidator(_unique_skus)]
ShippedLines = Annotated[list[ShippedLine], Field(min_length=1, max_length=1000), AfterValidator(_unique_skus)]


# ---------------------------------------------------------------- event data


class OrderSubmitted(Contract):
    customer_id: Identifier
    channel: Text
    currency: Currency
    lines: OrderLines
    shipping_fee: Money = 0
    discount: Money = 0
    total: Money
    requires_confirmation: Flag = False
    shipping_address: Address


class OrderConfirmed(Contract):
    confirmed_by: Text


class PaymentCaptured(Contract):
    payment_id: Identifier
    amount: PositiveMoney
    method: Text


class PaymentFailed(Contract):
    payment_id: Identifier
    reason: Text


class ShipmentDispatched(Contract):
    shipment_id: Identifier
    carrier: Text
    tracking_no: Text
    lines: ShippedLines


class ShipmentDelivered(Contract):
    shipment_id: Identifier


class DeliveryFailed(Contract):
    shipment_id: Identifier
    reason: Literal["lost", "damaged", "refused", "address"]


class OrderCompleted(Contract):
    pass


class OrderCancelled(Contract):
    reason_code: ReasonCode
    initiated_by: Literal["customer", "merchant", "platform", "system"]
    note: FreeText = ""

    @model_validator(mode="after")
    def _other_needs_a_note(self) -> OrderCancelled:
        if self.reason_code == REASON_NEEDING_NOTE and not self.note.strip():
            raise ValueError("reason_code OTHER needs a note saying what the reason was")
        return self


class RefundIssued(Contract):
    refund_id: Identifier
    amount: PositiveMoney
    reason: Text


class AddressCorrected(Contract):
    shipping_address: Address


class StockCounted(Contract):
    on_hand: Count


# Recorded by orderlog itself, never accepted from upstream.


class RequestRefused(Contract):
    request_type: str
    reason: str
    request_data: str
    """The refused request's data as canonical JSON (personal parts already sealed)."""


class ConflictRecorded(Contract):
    """A fact that contradicts an earlier one with the same natural key (another amount for
    a payment id already captured, other lines for a shipment already dispatched). It
    happened in another system, so it is kept, but it changes no figure."""

    fact_type: str
    key_field: str
    key_value: str
    earlier_event_id: str
    fact_data: str
    """The conflicting fact's data as canonical JSON."""


class ExceptionAcknowledged(Contract):
    """A person took an exception of the queue on (`orderlog exceptions ack`); the actor is who."""

    exception_id: str
    code: str
    note: FreeText = ""


class ExceptionResolved(Contract):
    """A person resolved an exception of the queue, saying how (`orderlog exceptions resolve`)."""

    exception_id: str
    code: str
    note: FreeText


class ClockTicked(Contract):
    """`orderlog tick`: time passed with no event to say so (a quiet night); the queue's
    deadlines see it, in a replay as live."""


class AccountAdded(Contract):
    """`orderlog users add`: a person may sign in to the console in this role; the actor
    is who added them. The password is not recorded (see orderlog.domain.account)."""

    role: Identifier


class AccountDisabled(Contract):
    """`orderlog users disable`: the account can no longer sign in; its sessions end."""

    reason: FreeText = ""


class CustomerErased(Contract):
    reason: Text
    keys_destroyed: Count


class SourceRegistered(Contract):
    types: list[str]
    public_key: str
    key_id: str


class SourceRevoked(Contract):
    key_id: str
    reason: FreeText = ""


# ---------------------------------------------------------------- the registry


class Kind(StrEnum):
    """How the lifecycle treats an event (DESIGN.md, "facts versus requests")."""

    FACT = "fact"
    """Happened elsewhere: always recorded, even when it breaks the expected lifecycle."""
    REQUEST = "request"
    """Asks for a transition: refused, and the refusal recorded, when the lifecycle forbids it."""
    RECORD = "record"
    """Written by orderlog itself."""


STREAM_KEYS = {
    "order": "order_id",
    "sku": "sku",
    "customer": "customer_id",
    "source": "source_name",
    "clock": "clock",
    "account": "account_name",
}
"""Each stream kind and the envelope field that names one stream of it."""


@dataclass(frozen=True)
class EventType:
    name: str
    data: type[Contract]
    stream: str
    kind: Kind
    upstream: bool = True
    wall_clock: bool = False
    """Recorded at the wall clock's time by a person or an administrator (an acknowledgement, a
    new account, a source's key), not a time the traffic has reached: such records never move a
    projector's clock, or acknowledging an exception on last March's traffic, or adding a user,
    would make all of last March overdue at once."""
    natural_key: str | None = None
    """The data field that identifies the fact in the system it happened in (a payment's
    `payment_id`): the same key under a new event id is the same fact, never counted twice."""

    @property
    def key_field(self) -> str:
        return STREAM_KEYS[self.stream]

    @cached_property
    def address_fields(self) -> tuple[str, ...]:
        """Data fields holding an Address: sealed (personal parts encrypted) before storing."""
        return tuple(name for name, field in self.data.model_fields.items() if field.annotation is Address)

    @property
    def personal(self) -> bool:
        return bool(self.address_fields)

    @cached_property
    def stored_data(self) -> type[Contract]:
        """The data as stored: every Address sealed (see orderlog.privacy.vault)."""
        if not self.address_fields:
            return self.data
        fields: dict[str, Any] = {
            name: (SealedAddress, ...) if name in self.address_fields else (field.annotation, field)
            for name, field in self.data.model_fields.items()
        }
        return create_model(f"Stored{self.name}", __base__=Contract, **fields)  # type: ignore[call-overload,no-any-return]


EVENT_TYPES: dict[str, EventType] = {
    t.name: t
    for t in (
        EventType("OrderSubmitted", OrderSubmitted, "order", Kind.REQUEST),
        EventType("OrderConfirmed", OrderConfirmed, "order", Kind.REQUEST),
        EventType("PaymentCaptured", PaymentCaptured, "order", Kind.FACT, natural_key="payment_id"),
        EventType("PaymentFailed", PaymentFailed, "order", Kind.FACT),
        EventType("ShipmentDispatched", ShipmentDispatched, "order", Kind.FACT, natural_key="shipment_id"),
        EventType("ShipmentDelivered", ShipmentDelivered, "order", Kind.FACT, natural_key="shipment_id"),
        EventType("DeliveryFailed", DeliveryFailed, "order", Kind.FACT),
        EventType("OrderCompleted", OrderCompleted, "order", Kind.REQUEST),
        EventType("OrderCancelled", OrderCancelled, "order", Kind.REQUEST),
        EventType("RefundIssued", RefundIssued, "order", Kind.FACT, natural_key="refund_id"),
        EventType("AddressCorrected", AddressCorrected, "order", Kind.REQUEST),
        EventType("StockCounted", StockCounted, "sku", Kind.FACT),
        EventType("RequestRefused", RequestRefused, "order", Kind.RECORD, upstream=False),
        EventType("ConflictRecorded", ConflictRecorded, "order", Kind.RECORD, upstream=False),
        EventType(
            "ExceptionAcknowledged", ExceptionAcknowledged, "order", Kind.RECORD, upstream=False, wall_clock=True
        ),
        EventType("ExceptionResolved", ExceptionResolved, "order", Kind.RECORD, upstream=False, wall_clock=True),
        EventType("ClockTicked", ClockTicked, "clock", Kind.RECORD, upstream=False),
        EventType("AccountAdded", AccountAdded, "account", Kind.RECORD, upstream=False, wall_clock=True),
        EventType("AccountDisabled", AccountDisabled, "account", Kind.RECORD, upstream=False, wall_clock=True),
        EventType("CustomerErased", CustomerErased, "customer", Kind.RECORD, upstream=False, wall_clock=True),
        EventType("SourceRegistered", SourceRegistered, "source", Kind.RECORD, upstream=False, wall_clock=True),
        EventType("SourceRevoked", SourceRevoked, "source", Kind.RECORD, upstream=False, wall_clock=True),
    )
}

UPSTREAM_TYPES = tuple(name for name, t in EVENT_TYPES.items() if t.upstream)

ENGINE_SOURCE = "orderlog"
"""The `source` of everything orderlog records on its own account."""


def _money_fields(model: type[BaseModel]) -> set[str]:
    names = set()
    for name, field in model.model_fields.items():
        if MONEY in field.metadata:
            names.add(name)
        for argument in (field.annotation, *typing.get_args(field.annotation)):
            if isinstance(argument, type) and issubclass(argument, BaseModel):
                names |= _money_fields(argument)
    return names


MONEY_FIELDS = frozenset(name for event_type in EVENT_TYPES.values() for name in _money_fields(event_type.data))
"""The names of every amount of money in the contract (shown in major units to people)."""
