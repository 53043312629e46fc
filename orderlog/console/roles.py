"""Who may do what in the console: one table, read by every route and by the tests."""

from __future__ import annotations

from enum import StrEnum

from orderlog.domain.account import Role


class Permission(StrEnum):
    SIGNED_IN = "session"
    READ_QUEUE = "queue.read"
    ACT_ON_QUEUE = "queue.act"
    READ_ORDERS = "orders.read"
    SEE_PERSONAL_DATA = "orders.personal"
    READ_HOLDS = "holds.read"
    READ_ANALYTICS = "analytics.read"
    READ_AUDIT = "audit.read"
    MANAGE_AUDIT = "audit.manage"
    MANAGE_USERS = "users.manage"
    MANAGE_SOURCES = "sources.manage"


EVERYONE = frozenset(Role)

ALLOWED: dict[Permission, frozenset[Role]] = {
    Permission.SIGNED_IN: EVERYONE,
    Permission.READ_QUEUE: EVERYONE,
    Permission.ACT_ON_QUEUE: frozenset({Role.OPERATIONS, Role.CUSTOMER_SERVICE, Role.ADMIN}),
    Permission.READ_ORDERS: EVERYONE,
    Permission.SEE_PERSONAL_DATA: frozenset({Role.CUSTOMER_SERVICE}),
    Permission.READ_HOLDS: EVERYONE,
    Permission.READ_ANALYTICS: EVERYONE,
    Permission.READ_AUDIT: frozenset({Role.AUDITOR, Role.ADMIN}),
    Permission.MANAGE_AUDIT: frozenset({Role.AUDITOR, Role.ADMIN}),
    Permission.MANAGE_USERS: frozenset({Role.ADMIN}),
    Permission.MANAGE_SOURCES: frozenset({Role.ADMIN}),
}
"""Personal data is for customer service alone (everyone else sees it masked); people's
actions on the queue for those who work it; checkpoints and verification for auditors and
admins; accounts and upstream sources for admins."""


def may(role: Role, permission: Permission) -> bool:
    return role in ALLOWED[permission]
