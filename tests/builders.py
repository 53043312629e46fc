"""Upstream envelopes for tests: valid by default, every field overridable."""

from __future__ import annotations

import itertools
import json
from typing import Any

_ids = itertools.count(1)

ADDRESS = {
    "name": "Zhang Wei",
    "phone": "13800138000",
    "line1": "88 Nanjing Road",
    "city": "Shanghai",
    "postal_code": "200000",
    "country": "CN",
}


def envelope(kind: str, order_id: str = "SO-1", at: str = "2026-03-01T10:00:00Z", **fields: Any) -> dict[str, Any]:
    data = fields.pop("data", {})
    return {
        "event_id": fields.pop("event_id", f"evt-{next(_ids)}"),
        "type": kind,
        "order_id": order_id,
        "occurred_at": at,
        "source": fields.pop("source", "test-source"),
        "data": data,
        **fields,
    }


def submitted(
    order_id: str = "SO-1",
    *,
    lines: list[tuple[str, int, int]] | None = None,
    shipping_fee: int = 0,
    discount: int = 0,
    total: int | None = None,
    requires_confirmation: bool = False,
    customer_id: str = "C-1",
    address: dict[str, str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    items = [
        {"sku": sku, "qty": qty, "unit_price": price}
        for sku, qty, price in ([("SKU-A", 2, 500)] if lines is None else lines)
    ]
    value = sum(i["qty"] * i["unit_price"] for i in items)
    data = {
        "customer_id": customer_id,
        "channel": "web",
        "currency": "CNY",
        "lines": items,
        "shipping_fee": shipping_fee,
        "discount": discount,
        "total": value + shipping_fee - discount if total is None else total,
        "requires_confirmation": requires_confirmation,
        "shipping_address": address or dict(ADDRESS),
    }
    return envelope("OrderSubmitted", order_id, data=data, **fields)


def confirmed(order_id: str = "SO-1", **fields: Any) -> dict[str, Any]:
    return envelope("OrderConfirmed", order_id, data={"confirmed_by": "sales-ops"}, **fields)


def paid(order_id: str = "SO-1", amount: int = 1000, payment_id: str = "P-1", **fields: Any) -> dict[str, Any]:
    return envelope(
        "PaymentCaptured",
        order_id,
        data={"payment_id": payment_id, "amount": amount, "method": "alipay"},
        **fields,
    )


def payment_failed(order_id: str = "SO-1", payment_id: str = "P-F", **fields: Any) -> dict[str, Any]:
    return envelope("PaymentFailed", order_id, data={"payment_id": payment_id, "reason": "declined"}, **fields)


def dispatched(
    order_id: str = "SO-1",
    lines: list[tuple[str, int]] | None = None,
    shipment_id: str = "SH-1",
    **fields: Any,
) -> dict[str, Any]:
    items = [{"sku": sku, "qty": qty} for sku, qty in ([("SKU-A", 2)] if lines is None else lines)]
    return envelope(
        "ShipmentDispatched",
        order_id,
        data={"shipment_id": shipment_id, "carrier": "sf-express", "tracking_no": "T1", "lines": items},
        **fields,
    )


def delivered(order_id: str = "SO-1", shipment_id: str = "SH-1", **fields: Any) -> dict[str, Any]:
    return envelope("ShipmentDelivered", order_id, data={"shipment_id": shipment_id}, **fields)


def delivery_failed(
    order_id: str = "SO-1", shipment_id: str = "SH-1", reason: str = "lost", **fields: Any
) -> dict[str, Any]:
    return envelope("DeliveryFailed", order_id, data={"shipment_id": shipment_id, "reason": reason}, **fields)


def completed(order_id: str = "SO-1", **fields: Any) -> dict[str, Any]:
    return envelope("OrderCompleted", order_id, data={}, **fields)


def cancelled(
    order_id: str = "SO-1",
    reason_code: str = "CHANGED_MIND",
    initiated_by: str = "customer",
    note: str = "",
    **fields: Any,
) -> dict[str, Any]:
    return envelope(
        "OrderCancelled",
        order_id,
        data={"reason_code": reason_code, "initiated_by": initiated_by, "note": note},
        **fields,
    )


def refunded(order_id: str = "SO-1", amount: int = 1000, refund_id: str = "R-1", **fields: Any) -> dict[str, Any]:
    return envelope(
        "RefundIssued",
        order_id,
        data={"refund_id": refund_id, "amount": amount, "reason": "cancelled"},
        **fields,
    )


def address_corrected(order_id: str = "SO-1", address: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
    return envelope("AddressCorrected", order_id, data={"shipping_address": address or dict(ADDRESS)}, **fields)


def stock_counted(sku: str = "SKU-A", on_hand: int = 10, **fields: Any) -> dict[str, Any]:
    counted = envelope("StockCounted", data={"on_hand": on_hand}, **fields)
    del counted["order_id"]
    return {**counted, "sku": sku}


def line(envelope_: dict[str, Any]) -> str:
    return json.dumps(envelope_, ensure_ascii=False)
