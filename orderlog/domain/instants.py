"""Instants: how orderlog writes and reads a moment in time.

Every time orderlog records is an instant in UTC with millisecond precision, written
as `YYYY-MM-DDTHH:MM:SS.mmmZ`. One fixed-width form means that hashes can be recomputed
from any encoding that keeps milliseconds (the Avro schemas use timestamp-millis) and
that instants compare correctly as strings. Upstream times must name their zone; the
offset is honoured and then normalised to UTC.
"""

import re
from datetime import UTC, datetime

EARLIEST_YEAR = 1970
LATEST_YEAR = 9999


class InstantError(ValueError):
    """A time that orderlog cannot take: no zone, bad format, out of range."""


def format_instant(moment: datetime) -> str:
    """Millisecond UTC form; sub-millisecond digits are dropped, never rounded up."""
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


def parse_instant(text: str) -> datetime:
    """Reads an ISO 8601 / RFC 3339 time that carries a zone ('Z' or an offset)."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise InstantError(f"not an ISO 8601 time: {shown(text)} (expected e.g. 2026-03-01T10:15:00Z)") from None
    if moment.tzinfo is None:
        raise InstantError(f"time {shown(text)} has no zone: add 'Z' for UTC or an offset such as +08:00")
    try:
        year = moment.astimezone(UTC).year
    except OverflowError:  # in UTC it would fall before year 1 or after year 9999
        year = 0
    if not EARLIEST_YEAR <= year <= LATEST_YEAR:
        raise InstantError(f"time {shown(text)} is outside {EARLIEST_YEAR}-{LATEST_YEAR} (in UTC)")
    return moment


def shown(text: object, limit: int = 40) -> str:
    """A value quoted in an error: repr (so control characters show escaped), and cut, so
    that a megabyte of garbage makes a one-line error, not a megabyte of error."""
    if isinstance(text, str) and len(text) > limit:
        return f"{text[:limit]!r}... ({len(text):,} characters)"
    return repr(text)


CANONICAL_SHAPE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d\d\dZ$")


def normalise_instant(text: str) -> str:
    """An upstream time in orderlog's canonical form (already canonical: checked, kept)."""
    moment = parse_instant(text)
    if CANONICAL_SHAPE.match(text):
        return text
    return format_instant(moment)
