"""Moments: "as it stood then", the one rule for reading the past.

Three ways to name a past state, which combine:
- `as_of` is event time: the records that had *happened* by then (`occurred_at <= as_of`),
  applied in recorded order, so a fact that arrived late counts from when it happened;
- `known_at` is record time: what orderlog *knew* then (`recorded_at <= known_at`);
- `version`: the stream as it stood after its N-th record.
Together `as_of` and `known_at` tell a late-arriving fact from one that was known: an
auditor's "what did we know, and when". Every reader of the past (the CLI, the console,
the projectors' `--until`) goes through this one rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Moment:
    as_of: str | None = None
    known_at: str | None = None
    version: int | None = None

    @property
    def now(self) -> bool:
        """No bound at all: the stream as it stands."""
        return self.as_of is None and self.known_at is None and self.version is None

    def keeps(self, record: Any) -> bool:
        """Whether a record (anything with occurred_at, recorded_at and a version) counts."""
        return (
            (self.as_of is None or record.occurred_at <= self.as_of)
            and (self.known_at is None or record.recorded_at <= self.known_at)
            and (self.version is None or record.originator_version <= self.version)
        )

    def words(self) -> str:
        """`2026-03-01T00:00:00.000Z (event time) and version 3`: the moment, for a message."""
        parts = [
            f"{self.as_of} (event time)" if self.as_of else "",
            f"{self.known_at} (record time)" if self.known_at else "",
            f"version {self.version}" if self.version else "",
        ]
        return " and ".join(part for part in parts if part) or "now"
