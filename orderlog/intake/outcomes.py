"""What taking input in says about each line: its outcome, batch by batch, and the tally.

Every line gets exactly one outcome: accepted, duplicate, conflict, refused, invalid, or
failed (orderlog itself failed on it). Nothing is dropped: every line not accepted or a
duplicate is reported with its reason, in a form that is always safe to write and show.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from orderlog.domain.text import escaped

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
CONFLICT = "conflict"
REFUSED = "refused"
INVALID = "invalid"
FAILED = "failed"
OUTCOMES = (ACCEPTED, DUPLICATE, CONFLICT, REFUSED, INVALID, FAILED)
REJECTED = frozenset({CONFLICT, REFUSED, INVALID, FAILED})
"""Outcomes reported line by line (the rejects file, the dead-letter topic) and that make
`publish` exit non-zero."""


@dataclass(frozen=True, slots=True)
class LineResult:
    line: int
    outcome: str
    event_id: str | None = None
    key: str | None = None
    reason: str = ""
    recorded: bool = False
    """Whether the line left a record in the store: an accepted event, a refusal, a conflict
    between facts. A line not accepted that left none (invalid, failed, an event id re-used
    for other content) exists only in this report, or in a dead letter."""

    def as_reject(self) -> dict[str, Any]:
        """The rejects-file form of a line that was not accepted."""
        return {
            "line": self.line,
            "outcome": self.outcome,
            "event_id": self.event_id,
            "key": self.key,
            "reason": self.reason,
        }

    def reject_line(self) -> str:
        """One JSON line for the rejects file, safe to write as UTF-8 and to show on a
        terminal whatever the input held (lone surrogates and controls come out escaped,
        which JSON reads back as the same characters)."""
        return escaped(json.dumps(self.as_reject(), ensure_ascii=False), keep_layout=True)


@dataclass(frozen=True)
class BatchReport:
    """What one stored batch did: counts per outcome, the lines that were not accepted, and
    how far into the input it got (bytes, for progress)."""

    counts: dict[str, int]
    rejects: list[LineResult]
    position: int = 0

    @classmethod
    def of(cls, results: Iterable[LineResult], position: int = 0) -> BatchReport:
        counts = dict.fromkeys(OUTCOMES, 0)
        rejects = []
        for result in results:
            counts[result.outcome] += 1
            if result.outcome in REJECTED:
                rejects.append(result)
        return cls(counts, rejects, position)


@dataclass
class Tally:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))

    def add(self, results: Iterable[LineResult] | BatchReport) -> None:
        report = results if isinstance(results, BatchReport) else BatchReport.of(results)
        for outcome, count in report.counts.items():
            self.counts[outcome] += count

    @property
    def clean(self) -> bool:
        """Everything accepted or a duplicate: what exit code 0 means."""
        return not any(self.counts[outcome] for outcome in REJECTED)

    def __str__(self) -> str:
        c = self.counts
        text = (
            f"accepted {c[ACCEPTED]}, duplicates {c[DUPLICATE]}, conflicts {c[CONFLICT]}, "
            f"refused {c[REFUSED]}, invalid {c[INVALID]}"
        )
        return text + (f", failed {c[FAILED]}" if c[FAILED] else "")
