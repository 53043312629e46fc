"""Simulated upstream traffic, deterministic for a seed, shaped by the source documents.

Figures taken from DOMAIN.md (seeds/000-004): several channels, mobile the largest; about
8% of orders cancelled, over 60% of those within 24 hours, with the reason mix of the
documents (customer causes first, then merchant, then external); B2B orders that need
confirmation and pay a deposit then the balance; multi-line orders shipped in parts;
some shipments later than 48 hours; duplicate payments; failed payments and deliveries;
refunds after cancellation (some forgotten); address corrections; stock counts; and a
small share of what real integrations send by mistake: re-delivered events, requests the
lifecycle refuses, and malformed lines.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orderlog.domain.instants import format_instant, parse_instant

DEFAULT_START = "2026-03-01T00:00:00Z"

CHANNELS = [
    ("app", 40),
    ("web", 18),
    ("tmall", 14),
    ("jd", 10),
    ("pinduoduo", 8),
    ("store", 5),
    ("phone", 5),
]
SHOP_SOURCE = {"app": "shop-app", "web": "shop-web", "store": "store-pos", "phone": "call-centre"}
CARRIERS = ["sf-express", "zto", "yto", "jd-logistics", "ems"]
CITIES = [
    ("Shanghai", "200000"),
    ("Beijing", "100000"),
    ("Guangzhou", "510000"),
    ("Shenzhen", "518000"),
    ("Hangzhou", "310000"),
    ("Chengdu", "610000"),
    ("Wuhan", "430000"),
    ("Xi'an", "710000"),
]
SURNAMES = ["Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou"]
STREETS = ["Nanjing", "Huaihai", "Zhongshan", "Renmin"]
GIVEN = ["Wei", "Fang", "Na", "Min", "Jing", "Lei", "Yan", "Qiang", "Jun", "Ting"]

CANCEL_REASONS = [  # (code, initiated_by, weight): customer causes dominate (seeds/000)
    ("CHANGED_MIND", "customer", 22),
    ("PRICE_NOT_AS_EXPECTED", "customer", 14),
    ("PAYMENT_DIFFICULTY", "customer", 9),
    ("SLOW_DELIVERY", "customer", 7),
    ("ITEM_NOT_AS_DESCRIBED", "customer", 6),
    ("POOR_SERVICE", "customer", 3),
    ("POOR_PLATFORM_EXPERIENCE", "customer", 3),
    ("OUT_OF_STOCK", "merchant", 12),
    ("PRICING_ERROR", "merchant", 4),
    ("PROMOTION_ERROR", "merchant", 4),
    ("LOGISTICS_UNAVAILABLE", "merchant", 3),
    ("SYSTEM_ERROR", "merchant", 3),
    ("POLICY_CHANGE", "platform", 2),
    ("FORCE_MAJEURE", "platform", 2),
    ("PAYMENT_PROVIDER_OUTAGE", "platform", 2),
    ("FRAUD_SUSPECTED", "platform", 2),
    ("OTHER", "customer", 2),
]
SOURCES: dict[str, list[str]] = {
    "shop-app": ["OrderSubmitted", "OrderCancelled", "AddressCorrected", "OrderCompleted"],
    "shop-web": ["OrderSubmitted", "OrderCancelled", "AddressCorrected", "OrderCompleted"],
    "store-pos": ["OrderSubmitted", "OrderCancelled", "AddressCorrected", "OrderCompleted"],
    "call-centre": ["OrderSubmitted", "OrderCancelled", "AddressCorrected", "OrderCompleted"],
    "marketplace-tmall": ["OrderSubmitted", "OrderCancelled", "AddressCorrected", "OrderCompleted"],
    "marketplace-jd": ["OrderSubmitted", "OrderCancelled", "AddressCorrected", "OrderCompleted"],
    "marketplace-pinduoduo": [
        "OrderSubmitted",
        "OrderCancelled",
        "AddressCorrected",
        "OrderCompleted",
    ],
    "erp": ["OrderSubmitted", "OrderConfirmed", "OrderCancelled"],
    "payment-gateway": ["PaymentCaptured", "PaymentFailed", "RefundIssued"],
    "warehouse": ["ShipmentDispatched", "StockCounted"],
    "carrier-hub": ["ShipmentDelivered", "DeliveryFailed"],
}
"""Every simulated source and the event types it publishes (`simulate --sign-with` registers these)."""


@dataclass
class Story:
    """One order's events, each at its event time."""

    order_id: str
    source: str
    events: list[tuple[datetime, dict[str, Any]]] = field(default_factory=list)


class Simulator:
    def __init__(self, seed: int, start: datetime, orders: int):
        self.rng = random.Random(seed)
        self.seed = seed
        self.start = start
        self.orders = orders
        self.counter = 0
        self.skus = [
            (f"SKU-{n:04d}", self.rng.choice([990, 1990, 2990, 4990, 8990, 12900, 29900, 59900])) for n in range(1, 241)
        ]
        self.customers = [f"C-{seed}-{n:05d}" for n in range(max(50, orders // 3))]
        self.window = timedelta(days=max(1.0, orders / 400))

    def event(
        self,
        kind: str,
        order_id: str,
        at: datetime,
        source: str,
        data: dict[str, Any],
        *,
        actor: str | None = None,
    ) -> tuple[datetime, dict[str, Any]]:
        self.counter += 1
        envelope: dict[str, Any] = {
            "event_id": f"evt-{self.seed}-{self.counter:07d}",
            "type": kind,
            "order_id": order_id,
            "occurred_at": format_instant(at),
            "source": source,
            "data": data,
        }
        if actor:
            envelope["actor"] = actor
        return at, envelope

    # ------------------------------------------------------------ one order

    def story(self, number: int) -> Story:
        rng = self.rng
        order_id = f"SO-{self.seed}-{number:06d}"
        channel = rng.choices([c for c, _ in CHANNELS], [w for _, w in CHANNELS])[0]
        b2b = rng.random() < 0.08
        source = "erp" if b2b else SHOP_SOURCE.get(channel, f"marketplace-{channel}")
        placed = self.start + self.window * rng.random()
        story = Story(order_id, source)
        lines = self._lines(b2b)
        shipping_fee = 0 if b2b or rng.random() < 0.6 else rng.choice([600, 800, 1200])
        value = sum(line["qty"] * line["unit_price"] for line in lines)
        discount = min(rng.choice([0, 0, 0, 500, 1000, value // 10]), value // 2)
        total = value + shipping_fee - discount
        if rng.random() < 0.004:
            total -= 100  # a promotion stacked wrongly: the total does not add up
        customer = rng.choice(self.customers)
        submitted = {
            "customer_id": customer,
            "channel": channel,
            "currency": "CNY",
            "lines": lines,
            "shipping_fee": shipping_fee,
            "discount": discount,
            "total": total,
            "requires_confirmation": b2b,
            "shipping_address": self._address(),
        }
        story.events.append(self.event("OrderSubmitted", order_id, placed, source, submitted))
        self._lifecycle(story, placed, total, lines, b2b)
        return story

    def _lines(self, b2b: bool) -> list[dict[str, Any]]:
        count = self.rng.choices([1, 2, 3, 4], [55, 25, 13, 7])[0]
        picked = self.rng.sample(self.skus, count)
        top = 200 if b2b else 3
        return [
            {
                "sku": sku,
                "qty": self.rng.randint(1, top) if b2b else self.rng.choice([1, 1, 1, 2, top]),
                "unit_price": price,
            }
            for sku, price in picked
        ]

    def _address(self) -> dict[str, str]:
        rng = self.rng
        city, postal = rng.choice(CITIES)
        phone = f"1{rng.choice('3578')}{rng.randint(0, 999999999):09d}"
        if rng.random() < 0.012:
            phone = rng.choice(["", "12345", "call me"])  # invalid phone: the exception queue flags it
        return {
            "name": f"{rng.choice(SURNAMES)} {rng.choice(GIVEN)}",
            "phone": phone,
            "line1": f"{rng.randint(1, 999)} {rng.choice(STREETS)} Road",
            "city": city,
            "postal_code": postal,
            "country": "CN",
        }

    def _lifecycle(self, story: Story, placed: datetime, total: int, lines: list[dict[str, Any]], b2b: bool) -> None:
        rng = self.rng
        at = placed
        if b2b:
            at += timedelta(hours=rng.uniform(0.5, 30))
            story.events.append(
                self.event(
                    "OrderConfirmed",
                    story.order_id,
                    at,
                    "erp",
                    {"confirmed_by": rng.choice(["sales-ops", "account-manager"])},
                    actor=rng.choice(["u-li", "u-chen"]),
                )
            )
        if rng.random() < 0.083:
            self._cancelled(story, at, total, b2b)
            return
        if rng.random() < 0.03:
            return  # never paid: left for the payment timeout (seeds/002: "times out unhandled")
        at = self._payments(story, at, total, b2b)
        if rng.random() < 0.02:
            story.events.append(
                self.event(
                    "AddressCorrected",
                    story.order_id,
                    at + timedelta(minutes=20),
                    story.source,
                    {"shipping_address": self._address()},
                )
            )
        self._shipments(story, at, lines)

    def _cancelled(self, story: Story, at: datetime, total: int, b2b: bool) -> None:
        rng = self.rng
        code, initiated_by, _ = rng.choices(CANCEL_REASONS, [w for *_, w in CANCEL_REASONS])[0]
        paid_first = rng.random() < 0.35
        if paid_first:
            at = self._payments(story, at, total, b2b)
        early = rng.random() < 0.66  # over 60% of cancellations within 24 h (seeds/000)
        at += timedelta(hours=rng.uniform(0.05, 23.5) if early else rng.uniform(24, 96))
        data = {
            "reason_code": code,
            "initiated_by": initiated_by,
            "note": "customer asked by phone" if code == "OTHER" else "",
        }
        source = "erp" if initiated_by != "customer" else story.source
        story.events.append(self.event("OrderCancelled", story.order_id, at, source, data))
        if paid_first and rng.random() < 0.85:  # some refunds are forgotten (seeds/000)
            story.events.append(
                self.event(
                    "RefundIssued",
                    story.order_id,
                    at + timedelta(hours=rng.uniform(1, 30)),
                    "payment-gateway",
                    {
                        "refund_id": f"R-{story.order_id}",
                        "amount": total,
                        "reason": f"cancelled: {code}",
                    },
                )
            )

    def _payments(self, story: Story, at: datetime, total: int, b2b: bool) -> datetime:
        rng = self.rng
        if rng.random() < 0.04:
            at += timedelta(minutes=rng.uniform(1, 10))
            story.events.append(
                self.event(
                    "PaymentFailed",
                    story.order_id,
                    at,
                    "payment-gateway",
                    {"payment_id": f"P-{story.order_id}-f", "reason": "card declined"},
                )
            )
        parts = [total * 3 // 10, total - total * 3 // 10] if b2b and total > 1 else [total]
        for index, amount in enumerate(parts):
            at += timedelta(minutes=rng.uniform(1, 25)) if index == 0 else timedelta(days=rng.uniform(1, 10))
            payment = {
                "payment_id": f"P-{story.order_id}-{index}",
                "amount": amount,
                "method": rng.choice(["alipay", "wechat-pay", "unionpay", "bank-transfer" if b2b else "card"]),
            }
            story.events.append(self.event("PaymentCaptured", story.order_id, at, "payment-gateway", payment))
            if rng.random() < 0.006:  # the customer charged twice: a second capture, its own payment id (seeds/000)
                again = {**payment, "payment_id": f"{payment['payment_id']}-again"}
                story.events.append(
                    self.event("PaymentCaptured", story.order_id, at + timedelta(seconds=40), "payment-gateway", again)
                )
        return at

    def _shipments(self, story: Story, at: datetime, lines: list[dict[str, Any]]) -> None:
        rng = self.rng
        late = rng.random() < 0.06
        at += timedelta(hours=rng.uniform(50, 120) if late else rng.uniform(2, 40))
        split = len(lines) > 1 and rng.random() < 0.3
        parts = [lines[: len(lines) // 2], lines[len(lines) // 2 :]] if split else [lines]
        for index, part in enumerate(parts):
            shipment_id = f"SH-{story.order_id}-{index + 1}"
            dispatched = at + timedelta(hours=index * rng.uniform(20, 60))
            story.events.append(
                self.event(
                    "ShipmentDispatched",
                    story.order_id,
                    dispatched,
                    "warehouse",
                    {
                        "shipment_id": shipment_id,
                        "carrier": rng.choice(CARRIERS),
                        "tracking_no": f"T{rng.randint(10**9, 10**10 - 1)}",
                        "lines": [{"sku": line["sku"], "qty": line["qty"]} for line in part],
                    },
                )
            )
            self._delivery(story, dispatched, shipment_id)
        if rng.random() < 0.004:  # a cancellation that comes too late: refused, recorded
            story.events.append(
                self.event(
                    "OrderCancelled",
                    story.order_id,
                    at + timedelta(hours=3),
                    story.source,
                    {"reason_code": "CHANGED_MIND", "initiated_by": "customer", "note": ""},
                )
            )

    def _delivery(self, story: Story, dispatched: datetime, shipment_id: str) -> None:
        rng = self.rng
        arrived = dispatched + timedelta(days=rng.uniform(1, 5))
        roll = rng.random()
        if roll < 0.025:
            reason = rng.choice(["lost", "damaged", "refused", "address"])
            story.events.append(
                self.event(
                    "DeliveryFailed",
                    story.order_id,
                    arrived,
                    "carrier-hub",
                    {"shipment_id": shipment_id, "reason": reason},
                )
            )
            if reason in ("address", "refused") and rng.random() < 0.5:
                story.events.append(
                    self.event(
                        "ShipmentDelivered",
                        story.order_id,
                        arrived + timedelta(days=2),
                        "carrier-hub",
                        {"shipment_id": shipment_id},
                    )
                )
        elif roll < 0.1:  # no delivery scan: the shop completes when the customer confirms receipt
            story.events.append(
                self.event("OrderCompleted", story.order_id, arrived + timedelta(days=7), story.source, {})
            )
        else:
            story.events.append(
                self.event(
                    "ShipmentDelivered",
                    story.order_id,
                    arrived,
                    "carrier-hub",
                    {"shipment_id": shipment_id},
                )
            )

    # ------------------------------------------------------------ the whole stream

    def envelopes(self) -> list[dict[str, Any] | str]:
        timed: list[tuple[datetime, dict[str, Any]]] = []
        for number in range(1, self.orders + 1):
            timed += self.story(number).events
        timed += self._stock_counts()
        horizon = self.start + self.window + timedelta(days=3)
        timed = [item for item in timed if item[0] <= horizon]  # what has not happened yet is not sent
        timed.sort(key=lambda item: item[0])
        stream: list[dict[str, Any] | str] = [envelope for _, envelope in timed]
        self._late_arrivals(stream)
        return self._mistakes(stream)

    def _stock_counts(self) -> list[tuple[datetime, dict[str, Any]]]:
        counts = []
        for day in range(int(self.window.days) + 1):
            for sku, _price in self.rng.sample(self.skus, 20):
                at = self.start + timedelta(days=day, hours=23, minutes=self.rng.randint(0, 59))
                _, envelope = self.event("StockCounted", "", at, "warehouse", {"on_hand": self.rng.randint(0, 500)})
                del envelope["order_id"]
                counts.append((at, {**envelope, "sku": sku}))
        return counts

    def _late_arrivals(self, stream: list[dict[str, Any] | str]) -> None:
        """Multi-channel integrations deliver a little out of order: move ~1% later
        (never a submission: an event for an order not yet submitted is invalid)."""
        for _ in range(len(stream) // 100):
            index = self.rng.randrange(len(stream))
            moved = stream[index]
            if isinstance(moved, dict) and moved["type"] != "OrderSubmitted":
                stream.insert(min(len(stream), index + self.rng.randint(2, 40)), stream.pop(index))

    def _mistakes(self, stream: list[dict[str, Any] | str]) -> list[dict[str, Any] | str]:
        rng = self.rng
        out: list[dict[str, Any] | str] = []
        for envelope in stream:
            out.append(envelope)
            roll = rng.random()
            if roll < 0.01:
                out.append(envelope)  # re-delivered: a duplicate, never recorded twice
            elif roll < 0.015:
                out.append(self._malformed(envelope))
        return out

    def _malformed(self, envelope: dict[str, Any] | str) -> dict[str, Any] | str:
        assert isinstance(envelope, dict)
        broken = json.loads(json.dumps(envelope))
        broken["event_id"] += "-x"
        kind = self.rng.randrange(6)
        if kind == 0:
            return json.dumps(broken)[: self.rng.randint(10, 60)]  # truncated in transit
        if kind == 1:
            broken["occurred_at"] = broken["occurred_at"].removesuffix("Z")  # no zone
        elif kind == 2:
            broken["type"] = "OrderShipped"  # not a type of the contract
        elif kind == 3:
            broken.pop("source")
        elif kind == 4 and "lines" in broken["data"]:
            broken["data"]["lines"][0]["qty"] = -1
        else:
            broken["order_id" if "order_id" in broken else "sku"] = ""
        return broken


def simulate(orders: int, seed: int, start: str = DEFAULT_START) -> Iterator[str]:
    """JSON lines of simulated traffic: the same lines for the same arguments."""
    simulator = Simulator(seed, parse_instant(start), orders)
    for envelope in simulator.envelopes():
        yield envelope if isinstance(envelope, str) else json.dumps(envelope, ensure_ascii=False)
