"""Reading raw input, line by line, as input nobody controls.

A line may hold anything: garbage bytes, nesting 100,000 levels deep, numbers too large
for any field, lone surrogates, control characters. Reading never raises: every failure
becomes that line's reason, so one line can never stop the others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import IO

from orderlog.domain.envelope import InvalidEvent, Upstream, read_envelope
from orderlog.intake.outcomes import FAILED, INVALID, LineResult

LOG = logging.getLogger("orderlog")


def input_lines(file: IO[bytes]) -> Iterator[tuple[int, bytes, int]]:
    """(line number, the line without surrounding blanks, bytes read so far) of every
    non-blank line: blank lines are not events and are passed over."""
    position = 0
    for number, line in enumerate(file, start=1):
        position += len(line)
        stripped = line.strip()
        if stripped:
            yield number, stripped, position


def read_line(line: int, text: str | bytes) -> Upstream | LineResult:
    """One raw line as an envelope, or its outcome if it cannot be one. Never raises: the
    line is input nobody controls, and one line must not stop the others."""
    try:
        return read_envelope(text)
    except InvalidEvent as error:
        return LineResult(line, INVALID, error.event_id, error.key, error.reason)
    except Exception as error:  # a defect in orderlog's reading, shown as this line's reason
        return LineResult(line, INVALID, reason=f"cannot be read: {defect_words(error)}")


def failure(line: int, error: BaseException, event_id: str | None = None, key: str | None = None) -> LineResult:
    """A line orderlog itself failed on: reported (with its traceback under ORDERLOG_DEBUG)
    and set aside, so that the other lines are stored."""
    LOG.debug("orderlog failed on line %s", line, exc_info=error)
    reason = f"orderlog failed on this line ({defect_words(error)}); please report it"
    return LineResult(line, FAILED, event_id, key, reason)


def defect_words(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"
