"""Money: integer minor units of an ISO 4217 currency, and how a person reads an amount.

Amounts are stored and exchanged as integers of the currency's minor unit (fen, cents),
never as floats. Only text meant for people shows major units (`CNY 986.70`); JSON keeps
minor units.
"""

from __future__ import annotations

MINOR_UNIT_DIGITS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW"), 0),
    **dict.fromkeys(("PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}
"""Currencies whose minor unit is not a hundredth (ISO 4217); every other has two digits."""


class MoneyField:
    """Marks a contract field as an amount of money (see orderlog.domain.contract.Money)."""


MONEY = MoneyField()


def format_money(amount: int, currency: str) -> str:
    """`CNY 986.70` for 98670 fen; `JPY 1200` for 1200 yen; a minus sign before the number."""
    digits = MINOR_UNIT_DIGITS.get(currency, 2)
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**digits)
    number = f"{whole:,}" + (f".{fraction:0{digits}d}" if digits else "")
    return f"{currency} {sign}{number}"
