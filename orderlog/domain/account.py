"""A console account's stream: who may sign in, in which role, who let them in.

Accounts are event-sourced like sources, so an auditor sees who created whom and when,
and who was disabled by whom. The password is not part of the record: the log is kept
forever and copied to Kafka, so a hash in it could never be withdrawn. The hash lives in
the store's credentials table (orderlog.accounts), the account's history in the log.
"""

from __future__ import annotations

from enum import StrEnum

from orderlog.domain.envelope import Upstream
from orderlog.domain.record import Record
from orderlog.domain.stream import ACCEPTED, Decision, Outcome, StreamAggregate


class Role(StrEnum):
    """What a person does with the console (the console's role table says what each may do)."""

    OPERATIONS = "operations"
    CUSTOMER_SERVICE = "customer_service"
    ANALYST = "analyst"
    AUDITOR = "auditor"
    ADMIN = "admin"


class Account(StreamAggregate):
    STREAM = "account"
    OPENED_BY = frozenset({"AccountAdded"})

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.role = Role.ANALYST
        self.added_by: str | None = None
        self.added_at = ""
        self.disabled_at: str | None = None
        self.disabled_by: str | None = None

    @property
    def name(self) -> str:
        return self.key

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None

    def handle(self, upstream: Upstream, recorded_at: str | None = None) -> Decision:
        """An account is added once and disabled once; anything else is refused, saying why."""
        if upstream.type == "AccountAdded":
            return Decision(Outcome.REFUSED, f"account {self.key!r} exists already")
        if upstream.type == "AccountDisabled" and not self.enabled:
            return Decision(Outcome.REFUSED, f"account {self.key!r} was disabled already at {self.disabled_at}")
        self._append(upstream.type, upstream, upstream.data, recorded_at)
        return ACCEPTED

    def on_AccountAdded(self, record: Record) -> None:
        self.role = Role(record.data["role"])
        self.added_by = record.actor
        self.added_at = record.occurred_at

    def on_AccountDisabled(self, record: Record) -> None:
        self.disabled_at = record.occurred_at
        self.disabled_by = record.actor
