"""`orderlog customer forget`: erasing a customer's personal data (crypto-shredding)."""

from __future__ import annotations

import click

from orderlog.cli.common import cli, echo, opened


@cli.group()
def customer() -> None:
    """A customer's personal data."""


@customer.command("forget")
@click.argument("customer_id")
@click.option("--by", required=True, help="who asks for the erasure (recorded)")
@click.option("--reason", required=True, help="why (recorded), e.g. the request's reference")
def customer_forget(customer_id: str, by: str, reason: str) -> None:
    """Erase a customer's personal data for good by destroying their keys (crypto-shredding).

    Their orders stay, with names, phones and address lines shown as [erased].
    """
    destroyed = opened(writing=True).forget_customer(customer_id, by, reason)
    echo(f"customer {customer_id}: {destroyed} data key(s) destroyed; the erasure is recorded")
