"""Text for a terminal: any view laid out as aligned fields and tables.

Amounts of money show in major units with their currency (`CNY 986.70`), nested records
as indented fields, lists of records as tables, every record's data in full. What reaches
the terminal is escaped on the way out (orderlog.cli.common.echo).
"""

from __future__ import annotations

from typing import Any

from orderlog.domain.contract import MONEY_FIELDS
from orderlog.domain.money import format_money

HISTORY_COLUMNS = ("version", "type", "event_id", "occurred_at", "recorded_at", "source", "actor")
VIEW_MONEY_FIELDS = MONEY_FIELDS | {"paid_amount", "refunded_amount", "paid", "refunded"}
"""Amounts of money in views: the contract's, and the figures folded from them."""


def history_text(records: list[dict[str, Any]], currency: str | None = None) -> str:
    """Every record as a table row, with its data in full on the line beneath it."""
    rows = [{column: record[column] for column in HISTORY_COLUMNS} for record in records]
    details = [_inline(record["data"], currency) for record in records]
    return table_text(rows, currency, details=details)


def render_text(view: dict[str, Any], currency: str | None = None, indent: str = "") -> str:
    """Any view as aligned `name  value` lines: amounts in major units with their currency,
    nested records as indented fields, lists of records as tables."""
    currency = currency or view.get("currency")
    width = max(len(name) for name in view)
    lines = []
    for name, value in view.items():
        if isinstance(value, dict) and value:
            lines += [f"{indent}{name}:", render_text(value, currency, indent + "  ")]
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f"{indent}{name}:")
            lines += [f"{indent}  {row}" for row in table_text(value, currency).splitlines()]
        else:
            lines.append(f"{indent}{name:<{width}}  {_shown(name, value, currency)}")
    return "\n".join(lines)


def table_text(rows: list[dict[str, Any]], currency: str | None = None, details: list[str] | None = None) -> str:
    """Rows of equal keys as an aligned table; each row's detail, if any, beneath it."""
    columns = list(rows[0])
    cells = [[_shown(column, row[column], currency) for column in columns] for row in rows]
    widths = [max(len(column), *(len(row[i]) for row in cells)) for i, column in enumerate(columns)]
    header = "  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True))
    body = []
    for index, row in enumerate(cells):
        body.append("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())
        if details and details[index]:
            body.append(f"    {details[index]}")
    return "\n".join([header.rstrip(), *body])


def _shown(name: str, value: Any, currency: str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) and name in VIEW_MONEY_FIELDS and currency:
        return format_money(value, currency)
    if isinstance(value, dict | list):
        return _inline(value, currency) or "-"
    return str(value)


def _inline(value: Any, currency: str | None, name: str = "") -> str:
    """A record's data on one line, readable: `amount CNY 9.90, method card, payment_id P-1`."""
    if isinstance(value, dict):
        text = ", ".join(f"{key} {_inline(item, currency, key)}" for key, item in value.items())
        return f"({text})" if name else text
    if isinstance(value, list):
        items = [_inline(item, currency, name) for item in value]
        return "[" + "; ".join(items) + "]" if value and isinstance(value[0], dict) else ", ".join(items) or "-"
    return _shown(name, value, currency)
