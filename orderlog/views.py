"""What people read: an order as it stood, and a stream's history, as plain dicts.

The CLI prints these dicts as JSON, or as text through `render_text`, which lays out any
dict the same way; so a field added here shows in both without further code.
Personal fields are opened through the vault: plaintext, `[erased]` or `[encrypted]`.
"""

from __future__ import annotations

import json
from typing import Any

from orderlog.domain.contract import EVENT_TYPES
from orderlog.domain.order import Order
from orderlog.domain.stream import StreamAggregate
from orderlog.privacy.vault import Vault


def order_view(order: Order, vault: Vault) -> dict[str, Any]:
    address = order.shipping_address
    return {
        "order_id": order.order_id,
        "status": order.status.value,
        "financial_status": order.financial_status.value,
        "currency": order.currency,
        "total": order.total,
        "paid_amount": order.paid_amount,
        "refunded_amount": order.refunded_amount,
        "channel": order.channel,
        "customer_id": order.customer_id,
        "lines": [
            {
                "sku": line.sku,
                "qty": line.qty,
                "unit_price": line.unit_price,
                "shipped_qty": line.shipped_qty,
                "delivered_qty": line.delivered_qty,
            }
            for line in order.lines.values()
        ],
        "version": order.version,
        "submitted_at": order.first_occurred_at,
        "updated_at": order.last_occurred_at,
        "cancellation": order.cancellation,
        "shipping_address": vault.open_address(address),
        "address_valid": address["valid"],
    }


def record_view(event: StreamAggregate.Event, vault: Vault) -> dict[str, Any]:
    """One record as history shows it: every stored field, personal parts opened."""
    record = event.record()
    event_type = EVENT_TYPES[event.type]
    if event_type.personal:
        record["data"] = {
            name: (_opened_address(value, vault) if name in event_type.address_fields else value)
            for name, value in record["data"].items()
        }
        if record["signed_envelope"]:
            record["signed_envelope"] = vault.open_text(record["signed_envelope"])
    return record


def _opened_address(sealed: dict[str, Any], vault: Vault) -> dict[str, Any]:
    return {**vault.open_address(sealed), "valid": sealed["valid"], "problems": sealed["problems"]}


HISTORY_COLUMNS = ("version", "type", "event_id", "occurred_at", "recorded_at", "source", "actor")


def history_text(records: list[dict[str, Any]]) -> str:
    rows = [{**{c: r[c] for c in HISTORY_COLUMNS}, "data": _compact(r["data"])} for r in records]
    return table_text(rows)


def render_text(view: dict[str, Any]) -> str:
    """Any view as aligned `name: value` lines; lists of records become tables."""
    width = max(len(name) for name in view)
    lines = []
    for name, value in view.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f"{name}:")
            lines += ["  " + row for row in table_text(value).splitlines()]
        else:
            shown = "-" if value is None else _compact(value) if isinstance(value, dict | list) else value
            lines.append(f"{name:<{width}}  {shown}")
    return "\n".join(lines)


def table_text(rows: list[dict[str, Any]]) -> str:
    """Rows of equal keys as an aligned table."""
    columns = list(rows[0])
    cells = [[("-" if row[c] is None else str(row[c])) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    header = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join([header.rstrip(), *body])


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
