"""What people read: an order as it stood, and its records, as plain dicts.

Every entry point shows these: the command line as JSON or as text (orderlog.cli.rendering
lays out any dict the same way, so a field added here shows everywhere without further
code), the console as pages. Personal fields are opened through the vault: plaintext,
`[erased]` or `[encrypted]`; amounts stay integer minor units (rendering shows them in
major units).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from orderlog.domain.contract import EVENT_TYPES
from orderlog.domain.order import Order
from orderlog.domain.record import Record
from orderlog.domain.text import escaped
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


def record_view(stored: Record, vault: Vault) -> dict[str, Any]:
    """One record as history shows it: every stored field, personal parts opened."""
    record = stored.as_dict()
    event_type = EVENT_TYPES[stored.type]
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


def as_csv_text(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """Rows as CSV with a header line (the command line's --csv, the console's downloads);
    given its `columns`, an empty table is still its header."""
    if not rows and columns is None:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns or list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({name: _inert(value) for name, value in row.items()} for row in rows)
    return buffer.getvalue()


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _inert(value: Any) -> Any:
    """Text from upstream (a channel, a reason) that a spreadsheet would run as a formula
    (`=HYPERLINK(...)`) is written with a leading `'`, which spreadsheets show as text;
    characters nobody can see are written as `\\u200b` (orderlog.domain.text)."""
    if not isinstance(value, str):
        return value
    text = escaped(value, keep_layout=True)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text
