"""The exception queue: by department, status, code, overdue first; one exception with its
history; acknowledge and resolve (recorded on the order's history as the signed-in person)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from orderlog.console.guard import flash, guarded
from orderlog.console.roles import Permission
from orderlog.domain.exceptions import CODES, Department
from orderlog.domain.text import is_whole_number
from orderlog.queue_actions import QueueActionError, act_on_exception
from projections import exceptions as queue_view
from projections.exceptions import STATUSES, Exceptions

router = APIRouter()
PAGE_SIZE = 50
"""Rows per page: the most urgent first; the filters and the next pages reach the rest."""
LAST_PAGE = 100
"""The deepest page (5,000 rows): a page reads every row before it."""
ACTIONS = {"acknowledge": "ExceptionAcknowledged", "resolve": "ExceptionResolved"}


@guarded(router, "GET", "/", Permission.SIGNED_IN)
def home() -> Response:
    return RedirectResponse("/exceptions", status_code=303)


class QueueQuery(BaseModel):
    """What the queue page is asked for; anything not understood falls back to the whole queue."""

    status: str = Field("active", max_length=20)
    code: str = Field("", max_length=50)
    department: str = Field("", max_length=50)
    overdue: str = Field("", max_length=5)
    page: str = Field("", max_length=20)

    def filters(self) -> dict[str, Any]:
        return {
            "status": self.status if self.status in STATUSES else "active",
            "code": self.code if self.code in CODES else None,
            "department": self.department if self.department in set(Department) else None,
            "overdue": self.overdue == "1",
        }

    def page_number(self) -> int:
        """1 to LAST_PAGE: each page reads every row before it, so the deep end of a long
        queue is reached by its filters, not by paging."""
        return min(int(self.page), LAST_PAGE) if is_whole_number(self.page) and int(self.page) >= 1 else 1


def _queue(request: Request, filters: dict[str, Any], page: int, *, departments: bool) -> dict[str, Any]:
    key = ("queue", tuple(sorted(filters.items())), page, departments)
    return request.app.state.console.reading(
        request, key, lambda: _read_queue(request, filters, page, departments=departments)
    )


def _read_queue(request: Request, filters: dict[str, Any], page: int, *, departments: bool) -> dict[str, Any]:
    views = request.app.state.console.views
    built = queue_view.built(views)
    offset = (page - 1) * PAGE_SIZE
    items = queue_view.queue(views, **filters, limit=PAGE_SIZE + 1, offset=offset) if built else []
    query = {key: ("1" if value is True else value) for key, value in filters.items() if value}
    return {
        "built": built,
        "items": items[:PAGE_SIZE],
        "clock": queue_view.clock(views) if built else "",
        "departments": queue_view.by_department(views) if built and departments else [],
        "page": page,
        "first": offset + 1,
        "previous": urlencode({**query, "page": page - 1}) if page > 1 else None,
        "next": urlencode({**query, "page": page + 1}) if len(items) > PAGE_SIZE and page < LAST_PAGE else None,
        "filters": filters,
    }


@guarded(router, "GET", "/exceptions", Permission.READ_QUEUE)
def queue_page(request: Request, asked: Annotated[QueueQuery, Query()]) -> Response:
    return request.app.state.console.page(
        request,
        "queue.html",
        **_queue(request, asked.filters(), asked.page_number(), departments=True),
        statuses=list(STATUSES),
        codes=sorted(CODES),
        all_departments=[str(d) for d in Department],
    )


@guarded(router, "GET", "/exceptions/table", Permission.READ_QUEUE)
def queue_table(request: Request, asked: Annotated[QueueQuery, Query()]) -> Response:
    """The queue's table alone: the page fetches it every few seconds, so it follows the projectors."""
    context = _queue(request, asked.filters(), asked.page_number(), departments=False)
    return request.app.state.console.page(request, "queue_table.html", **context)


@guarded(router, "GET", "/exceptions/item", Permission.READ_QUEUE)
def exception_page(request: Request, id: str = "") -> Response:
    console = request.app.state.console
    item = queue_view.one(console.views, id) if queue_view.built(console.views) else None
    if item is None:
        raise HTTPException(404, f"No exception {id!r} in the queue.")
    history = []
    if item["order_id"] is not None:
        history = [
            record
            for record in console.service.order_history(item["order_id"])
            if record.event_id in item["caused_by"]
            or record.event_id == item["cleared_by"]
            or record.data.get("exception_id") == item["exception_id"]
        ]
    return console.page(request, "exception.html", item=item, rule=CODES[item["code"]], history=history)


@guarded(router, "POST", "/exceptions/{action}", Permission.ACT_ON_QUEUE)
def act(
    request: Request,
    action: str,
    exception_id: str = Form(max_length=300),
    note: str = Form(default="", max_length=2000),
) -> Response:
    """Acknowledge or resolve, as the signed-in person; the note says what is done, or how it was resolved."""
    if action not in ACTIONS:
        raise HTTPException(404, f"No action {action!r}.")
    console = request.app.state.console
    target = "/exceptions/item?" + urlencode({"id": exception_id})
    if action == "resolve" and not note.strip():
        flash(request, "Say how it was resolved (the note).")
        return RedirectResponse(target, status_code=303)
    try:
        with console.acting():  # read and checked under the lock: two people pressing at once act once
            item = queue_view.one(console.views, exception_id)
            if item is None:
                raise HTTPException(404, f"No exception {exception_id!r} in the queue.")
            act_on_exception(console.service, ACTIONS[action], item, request.state.session.name, note)
            console.catch_up([Exceptions])
        request.state.session.acted = True
    except QueueActionError as error:
        flash(request, str(error))
        return RedirectResponse(target, status_code=303)
    verb = "acknowledged" if action == "acknowledge" else "resolved"
    flash(request, f"{exception_id} {verb}: recorded in order {item['order_id']}'s history.")
    return RedirectResponse(target, status_code=303)
