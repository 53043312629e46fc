"""Console accounts: add, disable, list, change a password, and check one at sign-in.

The account's life (added in a role by whom, disabled by whom) is recorded in the log on
the account's stream; its password hash (argon2id) sits in the store's credentials table,
outside the log, because the log is kept forever and copied to Kafka. Passwords are never
stored, logged or shown in clear.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from eventsourcing.persistence import IntegrityError

from orderlog.domain.account import Account, Role
from orderlog.domain.engine import own_record
from orderlog.domain.stream import NotRecorded, record_time
from orderlog.domain.text import character_name, unsafe_character

if TYPE_CHECKING:
    from orderlog.application import OrderLog

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
"""Longer passwords are refused before hashing: an attacker's megabyte costs no CPU."""

_HASHER = PasswordHasher()
_DECOY_HASH = _HASHER.hash("a password nobody has: checked when the name is unknown")
"""Checked against when a name is unknown, so that a wrong name takes as long as a wrong password."""


class AccountError(ValueError):
    """An account change that cannot be made, named in one line."""


def add_account(app: OrderLog, name: str, role: str, password: str, by: str | None) -> Account:
    """A new account: the record first, then its password hash. Two people adding the same
    name at once: the second record is refused, before its hash could replace the first's.
    (A crash in between leaves an account without a password: `orderlog users password`.)"""
    check_name(name)
    if role not in set(Role):
        raise AccountError(f"unknown role {role!r}; choose from {', '.join(Role)}")
    check_password(password)
    if app.stream(Account, name) is not None:
        raise AccountError(f"account {name!r} exists already (`orderlog users list`)")
    hashed = _HASHER.hash(password)
    try:
        account = app.record_own(Account, own_record("AccountAdded", name, {"role": role}, by))
    except (NotRecorded, IntegrityError):
        raise AccountError(f"account {name!r} exists already: it was added a moment ago") from None
    app.database.set_credential(name, hashed, record_time())
    return account


def disable_account(app: OrderLog, name: str, reason: str, by: str | None) -> Account:
    """Disables an account for good (its sessions end at their next request). Nobody disables
    their own account, and the last enabled admin stays: else nobody could manage accounts
    from the console again (`orderlog users add` on the store's machine still can)."""
    account = _existing(app, name)
    if by is not None and by == name:
        raise AccountError(f"{name} cannot disable their own account: another admin can")
    enabled_admins = [other for other in list_accounts(app) if other.role is Role.ADMIN and other.enabled]
    if account.role is Role.ADMIN and account.enabled and len(enabled_admins) == 1:
        raise AccountError(f"{name} is the last admin who can sign in: add another admin first")
    try:
        return app.record_own(Account, own_record("AccountDisabled", name, {"reason": reason}, by))
    except NotRecorded as refused:  # disabled a moment ago, by someone else
        raise AccountError(str(refused)) from None


def change_password(app: OrderLog, name: str, password: str) -> None:
    _existing(app, name)
    check_password(password)
    app.database.set_credential(name, _HASHER.hash(password), record_time())


def list_accounts(app: OrderLog) -> list[Account]:
    added = app.log_reader.records(types=[("account", "AccountAdded")])
    names = sorted({record.key for _position, record in added})
    return [account for name in names if (account := app.stream(Account, name)) is not None]


def authenticate(app: OrderLog, name: str, password: str) -> Account | None:
    """The enabled account whose password this is, or None (never saying which part was wrong)."""
    if not NAME_PATTERN.fullmatch(name) or len(password) > MAX_PASSWORD:
        _verify(_DECOY_HASH, password[:MAX_PASSWORD])
        return None
    stored = app.database.get_credential(name)
    account = app.stream(Account, name) if stored is not None else None
    if not _verify(stored or _DECOY_HASH, password) or account is None or not account.enabled:
        return None
    return account


def check_name(name: str) -> None:
    found = unsafe_character(name)
    if found is not None:
        raise AccountError(f"account name holds {character_name(found[1])} at position {found[0]}")
    if not NAME_PATTERN.fullmatch(name):
        raise AccountError(
            f"account name {name!r}: 1 to 64 of a-z 0-9 . _ @ -, starting with a letter or digit (lower case)"
        )


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password may have at most {MAX_PASSWORD} characters")


def account_row(account: Account) -> dict[str, str | None]:
    """What `users list` and the console's users page show of an account."""
    return {
        "name": account.name,
        "role": str(account.role),
        "added_at": account.added_at,
        "added_by": account.added_by,
        "enabled": "yes" if account.enabled else f"no (since {account.disabled_at}, by {account.disabled_by})",
    }


def _existing(app: OrderLog, name: str) -> Account:
    account = app.stream(Account, name)
    if account is None:
        raise AccountError(f"no account {name!r} (`orderlog users list`)")
    return account


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
