"""Cancellation analytics for a window of event time, as charts, headline rates and CSV.

"As of" a past day closes the window at the end of that day (event time): the figures as
they stood then. (`orderlog replay --until` rebuilds every view as it stood; this page asks
the live view for a window, which is the same for what had happened by then.)
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from orderlog.console.charts import bar_chart
from orderlog.console.guard import guarded
from orderlog.console.roles import Permission
from orderlog.domain.instants import EARLIEST_YEAR, InstantError, format_instant, parse_instant, shown
from orderlog.presentation import as_csv_text
from projections import cancellations

router = APIRouter()
CHARTED = ("reason", "category", "channel", "day", "stage")


def _window(since: str, until: str, as_of: str) -> tuple[str | None, str | None]:
    start, end = _moment(since), _moment(until)
    day_end = _day_end(as_of.strip()) if as_of.strip() else None
    if day_end is not None:
        end = day_end if end is None else min(end, day_end)
    return start, end


def _moment(text: str) -> str | None:
    return format_instant(parse_instant(text)) if text.strip() else None


DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _day_end(text: str) -> str | None:
    """The end (UTC) of a day written as the date field sends it, YYYY-MM-DD; None for the
    last day a calendar holds (its end is no moment: the window stays open)."""
    try:
        day = date.fromisoformat(text) if DAY.fullmatch(text) else None
    except ValueError:
        day = None
    if day is None:
        raise InstantError(f"as of {shown(text)}: not a day; write it as YYYY-MM-DD (2026-03-01)")
    if day.year < EARLIEST_YEAR:
        raise InstantError(f"as of {shown(text)}: before {EARLIEST_YEAR}, earlier than any time orderlog keeps")
    if day == date.max:
        return None
    return format_instant(datetime.combine(day + timedelta(days=1), time(), UTC))


def _report(request: Request, by: str, since: str, until: str, as_of: str) -> tuple[dict[str, Any] | None, str, int]:
    """(the figures, or None and why not, and the page's status: 400 for a window that
    cannot be read, 200 when the view is not built yet)."""
    views = request.app.state.console.views
    if not cancellations.built(views):
        return None, "The cancellations view has not been built: run `orderlog project`.", 200
    try:
        start, end = _window(since, until, as_of)
        cancellations.check_window(start, end)
    except InstantError as error:
        return None, str(error), 400
    except cancellations.EmptyWindow as error:
        ended_by = f" (the end of the day as of {as_of.strip()})" if as_of.strip() and end != _moment(until) else ""
        return None, f"{error}{ended_by}", 400
    chosen = by if by in cancellations.DIMENSIONS else "reason"
    found = request.app.state.console.reading(
        request,
        ("cancellations", chosen, start, end),
        lambda: cancellations.report(views, by=chosen, since=start, until=end),
    )
    return found, "", 200


@guarded(router, "GET", "/analytics", Permission.READ_ANALYTICS)
def analytics_page(request: Request, by: str = "reason", since: str = "", until: str = "", as_of: str = "") -> Response:
    found, error, status = _report(request, by, since, until, as_of)
    chart = ""
    if found is not None:
        key = found["by"]
        chart = bar_chart(
            [(str(group[key]), group["cancelled"]) for group in found["groups"][:30]], title=f"cancelled by {key}"
        )
    return request.app.state.console.page(
        request,
        "analytics.html",
        status,
        found=found,
        error=error,
        chart=chart,
        dimensions=cancellations.DIMENSIONS,
        charted=CHARTED,
        by=by,
        since=since,
        until=until,
        as_of=as_of,
    )


@guarded(router, "GET", "/analytics.csv", Permission.READ_ANALYTICS)
def analytics_csv(request: Request, by: str = "reason", since: str = "", until: str = "", as_of: str = "") -> Response:
    found, error, status = _report(request, by, since, until, as_of)
    if found is None:
        return Response(error + "\n", status_code=status if status != 200 else 409, media_type="text/plain")
    return Response(
        as_csv_text(found["groups"], [found["by"], *cancellations.GROUP_FIGURES]),
        media_type="text/csv",
        headers={"content-disposition": f'attachment; filename="cancellations-by-{found["by"]}.csv"'},
    )
