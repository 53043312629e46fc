"""The writer's canonical JSON: what every record's hash covers, produced fast.

RFC 8785 (JCS) for orderlog's values (strings, integers below 2**53, booleans, null,
arrays, objects with ASCII keys) is sorted keys and compact separators; orjson writes
exactly those bytes about ten times faster than the standard library, which matters at
tens of thousands of records a second. The offline verifier (orderlog.audit_verify) keeps
its own standard-library form, so an auditor needs nothing but Python; a property test
proves both equal the `rfc8785` package for every event type, so the writer and the
auditor cannot drift.
"""

from __future__ import annotations

from typing import Any

import orjson


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 bytes of a value built from validated input."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
