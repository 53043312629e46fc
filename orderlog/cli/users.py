"""`orderlog users add|list|disable|password`: who may sign in to the console, in which role.

Passwords are asked for without echo (twice) or read from stdin with --password-stdin
(for scripts); never taken as an argument, where `ps` and shell history would keep them.
"""

from __future__ import annotations

import getpass
import json
import sys

import click

from orderlog.accounts import account_row, add_account, change_password, disable_account, list_accounts
from orderlog.cli.common import cli, echo, opened
from orderlog.cli.rendering import table_text
from orderlog.domain.account import Role

PASSWORD_STDIN = click.option(
    "--password-stdin", is_flag=True, help="read the password from the first line of stdin (for scripts)"
)
BY = click.option("--by", default=getpass.getuser, show_default="you", help="who does it (recorded)")


@cli.group()
def users() -> None:
    """Console accounts: add, list, disable, change a password."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice([role.value for role in Role]), required=True)
@PASSWORD_STDIN
@BY
def users_add(name: str, role: str, password_stdin: bool, by: str) -> None:
    """Add an account that may sign in to the console in ROLE (recorded in the log: who, when)."""
    account = add_account(opened(create=True), name, role, _password(password_stdin), by)
    echo(f"account {account.name} added ({account.role}) by {by}")


@users.command("list")
@click.option("--json", "as_json", is_flag=True)
def users_list(as_json: bool) -> None:
    """Every account: role, who added it and when, whether it may sign in."""
    rows = [account_row(account) for account in list_accounts(opened())]
    if as_json:
        echo(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        echo(table_text(rows) if rows else "no accounts yet: `orderlog users add NAME --role admin`")


@users.command("disable")
@click.argument("name")
@click.option("--reason", default="", help="why (recorded)")
@BY
def users_disable(name: str, reason: str, by: str) -> None:
    """Disable an account for good: it cannot sign in, and its open sessions end."""
    disable_account(opened(writing=True), name, reason, by)
    echo(f"account {name} disabled by {by}")


@users.command("password")
@click.argument("name")
@PASSWORD_STDIN
def users_password(name: str, password_stdin: bool) -> None:
    """Set a new password for an account."""
    change_password(opened(writing=True), name, _password(password_stdin))
    echo(f"account {name}: password changed")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise click.UsageError("no terminal to ask for the password on: pass --password-stdin and pipe it in")
    return str(click.prompt("password", hide_input=True, confirmation_prompt=True))
